#include "nn/tensorboard/event_encoding.hpp"

#include <algorithm>
#include <boost/crc.hpp>

#include "core/error.hpp"

namespace gg::tensorboard {

uint32_t crc32c(std::string_view bytes) {
  // Debian 12 packages no CRC32C library; Boost.CRC is header-only and long maintained.
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

namespace {
void append_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}
}  // namespace

std::string frame_record(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 16);
  append_le(out, payload.size(), 8);
  append_le(out, masked_crc32c(std::string_view(out.data(), 8)), 4);
  out.append(payload);
  append_le(out, masked_crc32c(payload), 4);
  return out;
}

const std::vector<double>& default_bucket_edges() {
  static const std::vector<double> edges = [] {
    std::vector<double> positive;
    for (double v = 1e-12; v < 1e20; v *= 1.1) positive.push_back(v);
    std::vector<double> all;
    all.reserve(2 * positive.size() + 1);
    for (auto it = positive.rbegin(); it != positive.rend(); ++it) all.push_back(-*it);
    all.push_back(0.0);
    all.insert(all.end(), positive.begin(), positive.end());
    return all;
  }();
  return edges;
}

Histogram make_histogram(const double* values, int64_t n, const std::vector<double>& edges) {
  GG_CHECK(n > 0, "[add_histogram] the values are empty (numel 0): a histogram needs one or more");
  GG_CHECK(edges.size() >= 2, "[add_histogram] need 2 or more bucket edges, got {}", edges.size());
  const size_t bins = edges.size() - 1;
  std::vector<double> counts(bins, 0.0);
  Histogram h;
  h.min = values[0];
  h.max = values[0];
  h.num = static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const double v = values[i];
    h.min = std::min(h.min, v);
    h.max = std::max(h.max, v);
    h.sum += v;
    h.sum_squares += v * v;
    if (!(v >= edges.front() && v <= edges.back())) continue;  // outside, or NaN
    size_t bin =
        static_cast<size_t>(std::upper_bound(edges.begin(), edges.end(), v) - edges.begin()) - 1;
    counts[std::min(bin, bins - 1)] += 1;  // the last bin includes its right edge
  }
  size_t first = 0;
  while (first < bins && counts[first] == 0) ++first;
  GG_CHECK(first < bins,
           "[add_histogram] none of the {} values lies within the bucket edges [{}, {}]", n,
           edges.front(), edges.back());
  size_t last = bins - 1;
  while (counts[last] == 0) --last;
  // TensorBoard stores right edges only: the bucket left of the first non-empty one (or an empty
  // one at the lowest edge) keeps the support's left edge.
  if (first == 0) h.bucket.push_back(0.0);
  h.bucket.insert(h.bucket.end(),
                  counts.begin() + static_cast<std::ptrdiff_t>(first ? first - 1 : 0),
                  counts.begin() + static_cast<std::ptrdiff_t>(last + 1));
  h.bucket_limit.assign(edges.begin() + static_cast<std::ptrdiff_t>(first),
                        edges.begin() + static_cast<std::ptrdiff_t>(last + 2));
  return h;
}

}  // namespace gg::tensorboard
