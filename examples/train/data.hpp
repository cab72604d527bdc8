#pragma once
// The data side of examples/train_multihead: a text file read one sequence per line, a
// character vocabulary (Unicode code points), a deterministic train/validation split, padded
// batches in a seeded order, and the exact bigram baseline the model has to beat.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <groupgrad/groupgrad.hpp>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace train {

// Token ids: PAD only fills batches (its targets are ignored), BOS starts and EOS ends a line.
inline constexpr int64_t kPad = 0, kBos = 1, kEos = 2, kFirstChar = 3;
// Targets with this value contribute nothing to the loss (cross_entropy's ignore_index).
inline constexpr int64_t kIgnore = -100;
// The largest batch (in lines) that BatchOrder, train_multihead and the bench accept.
inline constexpr int64_t kMaxBatchSize = int64_t{1} << 16;

// SplitMix64: a good 64-bit mix, used to derive independent seeds from (seed, counter).
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// UTF-8 to code points; a byte that is not valid UTF-8 stands for itself (Latin-1).
inline std::u32string decode_utf8(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int extra = b >= 0xf0 && b < 0xf8 ? 3 : b >= 0xe0 ? 2 : b >= 0xc0 ? 1 : 0;
    char32_t cp = extra == 3 ? b & 0x07 : extra == 2 ? b & 0x0f : extra == 1 ? b & 0x1f : b;
    bool ok = b < 0x80 || (extra > 0 && i + extra < s.size());
    for (int j = 1; ok && j <= extra; ++j) {
      const auto c = static_cast<unsigned char>(s[i + j]);
      ok = (c & 0xc0) == 0x80;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (!ok) cp = b;
    out.push_back(cp);
    i += ok ? 1 + extra : 1;
  }
  return out;
}

inline std::string encode_utf8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xc0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xe0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (c & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (c & 0x3f));
    }
  }
  return out;
}

// FNV-1a: decides a line's side of the split from its text alone, so the split does not depend
// on the seed or the file's order, and duplicate lines never straddle it.
inline uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

struct Dataset {
  std::vector<char32_t> chars;                   // token kFirstChar + i is chars[i]
  std::map<char32_t, int64_t> char_id;           // the inverse
  std::vector<std::vector<int64_t>> train, val;  // lines as character ids (no BOS/EOS)
  std::vector<std::string> train_text;           // sorted, to tell new samples from copies

  int64_t vocab_size() const { return kFirstChar + static_cast<int64_t>(chars.size()); }
  std::string decode(const std::vector<int64_t>& ids) const {
    std::u32string s;
    for (int64_t id : ids)
      if (id >= kFirstChar) s.push_back(chars[id - kFirstChar]);
    return encode_utf8(s);
  }
  bool in_train(const std::string& word) const {
    return std::binary_search(train_text.begin(), train_text.end(), word);
  }
  // Predicted tokens (characters + EOS) in a split: what the losses average over.
  static int64_t target_count(const std::vector<std::vector<int64_t>>& lines, int64_t seq_len) {
    int64_t n = 0;
    for (const auto& l : lines) n += std::min<int64_t>(static_cast<int64_t>(l.size()) + 1, seq_len);
    return n;
  }
};

// Reads non-empty lines (a trailing '\r' is dropped); about val_fraction of them (by hash) go to
// the validation split. The vocabulary is every character of the file, in code point order.
inline Dataset load_dataset(const std::string& path, double val_fraction) {
  std::ifstream in(path, std::ios::binary);
  GG_CHECK(in.good(), "[train_multihead] cannot open data file '{}'", path);
  std::vector<std::u32string> lines;
  std::vector<bool> is_val;
  std::string line;
  const auto val_cut = static_cast<uint64_t>(val_fraction * 1000000.0);
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    lines.push_back(decode_utf8(line));
    is_val.push_back(mix64(fnv1a(line)) % 1000000 < val_cut);
  }
  GG_CHECK(!lines.empty(), "[train_multihead] data file '{}' has no non-empty lines", path);

  Dataset d;
  for (const auto& l : lines)
    for (char32_t c : l) d.char_id.emplace(c, 0);
  for (auto& [c, id] : d.char_id) {
    id = kFirstChar + static_cast<int64_t>(d.chars.size());
    d.chars.push_back(c);
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<int64_t> ids;
    for (char32_t c : lines[i]) ids.push_back(d.char_id.at(c));
    if (is_val[i]) {
      d.val.push_back(std::move(ids));
    } else {
      d.train_text.push_back(encode_utf8(lines[i]));
      d.train.push_back(std::move(ids));
    }
  }
  GG_CHECK(!d.train.empty() && !d.val.empty(),
           "[train_multihead] the split left {} training and {} validation lines (need both; "
           "--val-fraction is {})",
           d.train.size(), d.val.size(), val_fraction);
  std::sort(d.train_text.begin(), d.train_text.end());
  return d;
}

// One line as model input and target, both seq_len long or shorter:
//   input  BOS c1 c2 ... cn        target c1 c2 ... cn EOS
// Lines longer than seq_len - 1 characters are cut (their EOS is then never predicted).
inline void encode_line(const std::vector<int64_t>& line, int64_t seq_len, int64_t* input,
                        int64_t* target, int64_t width) {
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(line.size()) + 1, seq_len);
  for (int64_t t = 0; t < width; ++t) {
    input[t] = t == 0 ? kBos : t < n ? line[t - 1] : kPad;
    target[t] = t < n ? (t < static_cast<int64_t>(line.size()) ? line[t] : kEos) : kIgnore;
  }
}

struct Batch {
  gg::Tensor input;    // [B, T] Int64 token ids
  gg::Tensor target;   // [B, T] Int64, kIgnore on padding
  int64_t tokens = 0;  // predicted (non-padding) targets
};

// The lines `order` names, as one batch padded to the longest of them (at most seq_len).
inline Batch make_batch(const std::vector<std::vector<int64_t>>& lines,
                        const std::vector<int64_t>& order, int64_t seq_len) {
  const auto b = static_cast<int64_t>(order.size());
  int64_t width = 1;
  for (int64_t i : order)
    width = std::max<int64_t>(width, std::min<int64_t>(lines[i].size() + 1, seq_len));
  std::vector<int64_t> input(b * width), target(b * width);
  Batch batch;
  for (int64_t r = 0; r < b; ++r) {
    encode_line(lines[order[r]], seq_len, &input[r * width], &target[r * width], width);
    batch.tokens += std::min<int64_t>(lines[order[r]].size() + 1, seq_len);
  }
  batch.input = gg::tensor<int64_t>(input, {b, width});
  batch.target = gg::tensor<int64_t>(target, {b, width});
  return batch;
}

// The training order: epoch after epoch, each a shuffle of the training lines seeded by
// (seed, epoch), cut into batches of lines of similar length (little padding): windows of 64
// batches' worth of shuffled lines are sorted by length and cut into batches, and the batches
// are shuffled. The batch of a step is a pure function of (seed, step), so a checkpoint's step is
// all the data-order state there is, and resuming sees exactly the batches it would have.
class BatchOrder {
 public:
  BatchOrder(const std::vector<std::vector<int64_t>>& lines, int64_t batch_size, uint64_t seed)
      : lines_(lines), batch_size_(batch_size), seed_(seed) {
    GG_CHECK(batch_size >= 1 && batch_size <= kMaxBatchSize,
             "[train] the batch size must be between 1 and {}, got {}", kMaxBatchSize, batch_size);
    GG_CHECK(!lines.empty(), "[train] there are no lines to make batches of");
  }

  int64_t batches_per_epoch() const {
    const auto n = static_cast<int64_t>(lines_.size());
    return n / batch_size_ + (n % batch_size_ != 0);  // (n + b - 1) / b would overflow
  }

  // Line indices of the batch of `step` (batch_size of them; an epoch's last may be smaller).
  std::vector<int64_t> indices(int64_t step) {
    GG_CHECK(step >= 0, "[train] step {} is negative", step);
    const int64_t epoch = step / batches_per_epoch();
    if (epoch != epoch_) plan(epoch);
    return batches_[step % batches_per_epoch()];
  }

 private:
  void plan(int64_t epoch) {
    const auto n = static_cast<int64_t>(lines_.size());
    std::mt19937_64 rng(mix64(seed_ ^ mix64(static_cast<uint64_t>(epoch) + 1)));
    // Fisher-Yates with our own bounded draw (std::uniform_int_distribution differs between
    // standard libraries; the bias of a 64-bit modulo is negligible here).
    auto shuffle = [&rng](auto& v) {
      for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i)
        std::swap(v[i], v[rng() % static_cast<uint64_t>(i + 1)]);
    };
    std::vector<int64_t> perm(n);
    for (int64_t i = 0; i < n; ++i) perm[i] = i;
    shuffle(perm);
    const int64_t window = batch_size_ > n / 64 ? n : 64 * batch_size_;  // 64 * b may overflow
    for (int64_t begin = 0; begin < n; begin += window)
      std::stable_sort(perm.begin() + begin, perm.begin() + std::min(n, begin + window),
                       [&](int64_t a, int64_t b) { return lines_[a].size() < lines_[b].size(); });
    batches_.clear();
    for (int64_t begin = 0; begin < n; begin += batch_size_)
      batches_.emplace_back(perm.begin() + begin, perm.begin() + std::min(n, begin + batch_size_));
    shuffle(batches_);
    epoch_ = epoch;
  }

  const std::vector<std::vector<int64_t>>& lines_;
  int64_t batch_size_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<std::vector<int64_t>> batches_;
};

// The distributed sampler (with --distributed): every rank builds the same BatchOrder -- the same
// seed, so the same shuffle of every epoch and the same global batch at every step -- and takes
// its own share of each step's batch: lines rank, rank + world, rank + 2 world, ... of it. The
// shares are disjoint and together are the batch one process would train on, so a run on any
// number of ranks sees the same data in the same steps. Dealing the lines out in turn (rather than
// in contiguous runs) keeps the shares' lengths alike, since a batch's lines are sorted by length.
// A batch of n lines gives the first n % world ranks one line more than the rest; a batch
// smaller than the world leaves the last ranks with none.
inline std::vector<int64_t> rank_share(const std::vector<int64_t>& batch, int rank, int world) {
  GG_CHECK(world >= 1 && rank >= 0 && rank < world, "[train] rank {} is not in a world of {} ranks",
           rank, world);
  std::vector<int64_t> share;
  for (size_t i = static_cast<size_t>(rank); i < batch.size(); i += static_cast<size_t>(world))
    share.push_back(batch[i]);
  return share;
}

// Predicted (non-padding) targets of the lines `order` names: what make_batch's tokens counts.
inline int64_t predicted_tokens(const std::vector<std::vector<int64_t>>& lines,
                                const std::vector<int64_t>& order, int64_t seq_len) {
  int64_t n = 0;
  for (int64_t i : order)
    n += std::min<int64_t>(static_cast<int64_t>(lines[i].size()) + 1, seq_len);
  return n;
}

// The exact bigram baseline: P(next | previous) from the training split's counts with add-alpha
// smoothing over the predictable tokens (characters and EOS), scored on the validation split in
// nats per predicted token (the same tokens and average the model's validation loss uses).
struct Bigram {
  int64_t vocab = 0;
  std::vector<double> counts;  // [vocab * vocab]: counts[prev * vocab + next]

  explicit Bigram(const Dataset& d, int64_t seq_len) : vocab(d.vocab_size()) {
    counts.assign(vocab * vocab, 0.0);
    for_each_pair(d.train, seq_len, [&](int64_t a, int64_t b) { counts[a * vocab + b] += 1; });
  }

  // Mean negative log-likelihood on `lines` with add-alpha smoothing.
  double loss(const std::vector<std::vector<int64_t>>& lines, int64_t seq_len, double alpha) const {
    const int64_t outcomes = vocab - kFirstChar + 1;  // characters and EOS
    std::vector<double> row_total(vocab, 0.0);
    for (int64_t a = 0; a < vocab; ++a)
      for (int64_t b = 0; b < vocab; ++b) row_total[a] += counts[a * vocab + b];
    double nll = 0;
    int64_t n = 0;
    for_each_pair(lines, seq_len, [&](int64_t a, int64_t b) {
      nll -= std::log((counts[a * vocab + b] + alpha) / (row_total[a] + alpha * outcomes));
      ++n;
    });
    return nll / static_cast<double>(n);
  }

  // The alpha that minimises the validation loss (golden-section search on log alpha): the best
  // any add-alpha bigram can do on this split, so the baseline is as strong as it gets.
  double best_alpha(const std::vector<std::vector<int64_t>>& lines, int64_t seq_len) const {
    double lo = std::log(1e-4), hi = std::log(10.0);
    const double g = (std::sqrt(5.0) - 1) / 2;
    auto f = [&](double x) { return loss(lines, seq_len, std::exp(x)); };
    double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo), f1 = f(x1), f2 = f(x2);
    for (int it = 0; it < 40; ++it) {
      if (f1 < f2) {
        hi = x2, x2 = x1, f2 = f1, x1 = hi - g * (hi - lo), f1 = f(x1);
      } else {
        lo = x1, x1 = x2, f1 = f2, x2 = lo + g * (hi - lo), f2 = f(x2);
      }
    }
    return std::exp((lo + hi) / 2);
  }

 private:
  // Every (input token, target token) pair the model is scored on.
  template <class Fn>
  static void for_each_pair(const std::vector<std::vector<int64_t>>& lines, int64_t seq_len,
                            Fn fn) {
    std::vector<int64_t> input(seq_len), target(seq_len);
    for (const auto& l : lines) {
      const int64_t width = std::min<int64_t>(static_cast<int64_t>(l.size()) + 1, seq_len);
      encode_line(l, seq_len, input.data(), target.data(), width);
      for (int64_t t = 0; t < width; ++t) fn(input[t], target[t]);
    }
  }
};

}  // namespace train
