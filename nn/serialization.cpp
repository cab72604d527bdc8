#include "nn/serialization.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <unordered_map>

#include "autograd/grad_mode.hpp"
#include "core/copy.hpp"
#include "core/error.hpp"

namespace gg {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this code writes and reads it natively");

namespace safetensors {

namespace {

using json = nlohmann::json;

// The safetensors reference implementation refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

std::string_view dtype_code(Dtype dtype) {
  switch (dtype) {
    case Dtype::Float32:
      return "F32";
    case Dtype::Float64:
      return "F64";
    case Dtype::BFloat16:
      return "BF16";
    case Dtype::Float16:
      return "F16";
    case Dtype::Int8:
      return "I8";
    case Dtype::Int32:
      return "I32";
    case Dtype::Int64:
      return "I64";
  }
  return "?";
}

std::optional<Dtype> dtype_from_code(std::string_view code) {
  for (Dtype d : {kFloat32, kFloat64, kBFloat16, kFloat16, kInt8, kInt32, kInt64})
    if (dtype_code(d) == code) return d;
  return std::nullopt;
}

std::string errno_str() { return std::strerror(errno); }

// Writes to a temporary file beside the target and renames it over the target on commit(); the
// destructor removes the temporary if commit() was never reached.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    static std::atomic<uint64_t> counter{0};
    std::filesystem::path target(path_);
    dir_ = target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path();
    tmp_ = (dir_ / fmt::format(".{}.tmp.{}.{}", target.filename().string(), ::getpid(),
                               counter.fetch_add(1)))
               .string();
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    GG_CHECK(fd_ >= 0, "[save] {}: cannot create the temporary file {}: {}", path_, tmp_,
             errno_str());
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
      if (w < 0 && errno == EINTR) continue;
      GG_CHECK(w > 0, "[save] {}: writing {} failed: {}", path_, tmp_, errno_str());
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  void commit() {
    GG_CHECK(::fsync(fd_) == 0, "[save] {}: fsync of {} failed: {}", path_, tmp_, errno_str());
    const int rc = ::close(fd_);
    fd_ = -1;
    GG_CHECK(rc == 0, "[save] {}: closing {} failed: {}", path_, tmp_, errno_str());
    GG_CHECK(::rename(tmp_.c_str(), path_.c_str()) == 0,
             "[save] {}: renaming {} over it failed: {}", path_, tmp_, errno_str());
    committed_ = true;
    // Make the rename itself durable; a failure here leaves a complete file, so it is not fatal.
    const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      (void)::fsync(dir_fd);
      ::close(dir_fd);
    }
  }

 private:
  std::string path_;
  std::filesystem::path dir_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

struct Entry {
  std::string name;
  Dtype dtype;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

// Reads a non-negative JSON integer, or returns nullopt.
std::optional<uint64_t> as_unsigned(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

Entry parse_entry(const std::string& path, const std::string& name, const json& v,
                  uint64_t data_size) {
  GG_CHECK(v.is_object(), "[safetensors] {}: tensor '{}' must be a JSON object, got {}", path, name,
           v.type_name());
  for (const auto& [field, value] : v.items()) {
    GG_CHECK(field == "dtype" || field == "shape" || field == "data_offsets",
             "[safetensors] {}: tensor '{}' has an unknown field '{}' (expected dtype, shape, "
             "data_offsets)",
             path, name, field);
  }
  for (const char* field : {"dtype", "shape", "data_offsets"})
    GG_CHECK(v.contains(field), "[safetensors] {}: tensor '{}' lacks the field '{}'", path, name,
             field);

  Entry e{name, kFloat32, {}, 0, 0};
  const json& dtype = v["dtype"];
  GG_CHECK(dtype.is_string(), "[safetensors] {}: tensor '{}' has a non-string dtype {}", path, name,
           dtype.dump());
  const std::string code = dtype.get<std::string>();
  std::optional<Dtype> d = dtype_from_code(code);
  GG_CHECK(d.has_value(),
           "[safetensors] {}: tensor '{}' has unknown dtype '{}' (supported: F32, F64, BF16, F16, "
           "I8, I32, I64)",
           path, name, code);
  e.dtype = *d;

  const json& shape = v["shape"];
  GG_CHECK(shape.is_array(), "[safetensors] {}: tensor '{}' has a shape that is not an array: {}",
           path, name, shape.dump());
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& s : shape) {
    std::optional<uint64_t> n = as_unsigned(s);
    GG_CHECK(n.has_value() && *n <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
             "[safetensors] {}: tensor '{}' has an invalid shape {} (sizes must be non-negative "
             "integers)",
             path, name, shape.dump());
    e.shape.push_back(static_cast<int64_t>(*n));
    overflow = overflow || __builtin_mul_overflow(numel, *n, &numel);
  }
  GG_CHECK(e.shape.size() <= 16, "[safetensors] {}: tensor '{}' has {} dimensions (at most 16)",
           path, name, e.shape.size());
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, element_size(e.dtype), &nbytes);
  GG_CHECK(!overflow, "[safetensors] {}: tensor '{}' with shape {} is too large", path, name,
           shape.dump());

  const json& offsets = v["data_offsets"];
  std::optional<uint64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = as_unsigned(offsets[0]);
    end = as_unsigned(offsets[1]);
  }
  GG_CHECK(begin && end && *begin <= *end,
           "[safetensors] {}: tensor '{}' has invalid data_offsets {} (expected [begin, end] with "
           "0 <= begin <= end)",
           path, name, offsets.dump());
  e.begin = *begin;
  e.end = *end;
  GG_CHECK(e.end - e.begin == nbytes,
           "[safetensors] {}: tensor '{}' has data_offsets [{}, {}) holding {} bytes, but {} {} "
           "needs {} bytes",
           path, name, e.begin, e.end, e.end - e.begin, code, shape.dump(), nbytes);
  GG_CHECK(e.end <= data_size,
           "[safetensors] {}: tensor '{}' has data_offsets [{}, {}) outside the data section "
           "({} bytes)",
           path, name, e.begin, e.end, data_size);
  return e;
}

}  // namespace

void write(const std::string& path, const nn::NamedTensors& tensors, const Metadata& metadata) {
  GG_CHECK(!path.empty(), "[save] the path is empty");
  NoGradGuard no_grad;
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    GG_CHECK(name != "__metadata__", "[save] {}: '__metadata__' is reserved, not a tensor name",
             path);
    GG_CHECK(names.insert(name).second, "[save] {}: the tensor name '{}' appears twice", path,
             name);
    GG_CHECK(t.defined(), "[save] {}: tensor '{}' is undefined", path, name);
  }
  // Wider element types first (the reference writer's order): with no gaps between tensors, every
  // tensor then starts at a multiple of its element size, so readers can map it in place.
  std::vector<const std::pair<std::string, Tensor>*> order;
  for (const auto& named : tensors) order.push_back(&named);
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return a->second.element_size() > b->second.element_size();
  });
  json header = json::object();
  std::vector<Tensor> data;
  uint64_t offset = 0;
  for (const auto* named : order) {
    const auto& [name, t] = *named;
    Tensor c = t.detach().contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[name] = {{"dtype", dtype_code(c.dtype())},
                    {"shape", c.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(std::move(c));
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');  // pad like the reference writer: data 8-aligned
  const uint64_t header_len = text.size();

  AtomicFile file(path);
  file.write(&header_len, sizeof(header_len));
  file.write(text.data(), text.size());
  for (const Tensor& c : data) file.write(c.raw_data(), c.numel() * c.element_size());
  file.commit();
}

namespace {

struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  Metadata metadata;
  uint64_t data_start = 0;
};

// Reads and validates the header of an open file: everything but the tensor bytes.
Header read_header(const std::string& path, std::ifstream& in) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  GG_CHECK(!ec, "[safetensors] {}: cannot read the file size: {}", path, ec.message());
  GG_CHECK(file_size >= 8,
           "[safetensors] {}: the file is {} bytes, too short for the 8-byte header length", path,
           file_size);
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), sizeof(header_len));
  GG_CHECK(in.good(), "[safetensors] {}: reading the header length failed", path);
  GG_CHECK(header_len <= file_size - 8,
           "[safetensors] {}: header length {} exceeds the file size ({} bytes, {} after the "
           "8-byte length)",
           path, header_len, file_size, file_size - 8);
  GG_CHECK(header_len <= kMaxHeaderBytes,
           "[safetensors] {}: header length {} is over the {}-byte limit", path, header_len,
           kMaxHeaderBytes);
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  GG_CHECK(in.good(), "[safetensors] {}: reading the {}-byte header failed", path, header_len);

  // JSON objects silently keep the last of duplicate keys; a parser callback catches them.
  std::set<std::string> top_keys;
  std::optional<std::string> duplicate;
  json header;
  try {
    header = json::parse(text, [&](int depth, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::key && depth == 1 && !duplicate &&
          !top_keys.insert(parsed.get<std::string>()).second)
        duplicate = parsed.get<std::string>();
      return true;
    });
  } catch (const json::exception& e) {
    fail("[safetensors] {}: the header is not valid JSON: {}", path, e.what());
  }
  GG_CHECK(header.is_object(), "[safetensors] {}: the header must be a JSON object, got {}", path,
           header.type_name());
  GG_CHECK(!duplicate, "[safetensors] {}: the header names '{}' twice", path,
           duplicate.value_or(""));

  const uint64_t data_size = file_size - 8 - header_len;
  Header out;
  std::vector<Entry>& entries = out.entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      GG_CHECK(value.is_object(),
               "[safetensors] {}: __metadata__ must be an object of strings, got {}", path,
               value.type_name());
      for (const auto& [k, v] : value.items()) {
        GG_CHECK(v.is_string(), "[safetensors] {}: __metadata__ entry '{}' is not a string: {}",
                 path, k, v.dump());
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, key, value, data_size));
  }

  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const Entry* furthest = nullptr;  // the non-empty range reaching furthest so far
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;
    GG_CHECK(furthest == nullptr || e.begin >= furthest->end,
             "[safetensors] {}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap in the data "
             "section",
             path, furthest ? furthest->name : "", furthest ? furthest->begin : 0,
             furthest ? furthest->end : 0, e.name, e.begin, e.end);
    furthest = &e;
  }

  out.data_start = 8 + header_len;
  return out;
}

std::ifstream open_for_reading(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  GG_CHECK(in.good(), "[safetensors] {}: cannot open the file: {}", path, errno_str());
  return in;
}

}  // namespace

Metadata read_metadata(const std::string& path) {
  std::ifstream in = open_for_reading(path);
  return read_header(path, in).metadata;
}

File read(const std::string& path) {
  std::ifstream in = open_for_reading(path);
  Header header = read_header(path, in);
  File out;
  out.metadata = std::move(header.metadata);
  for (const Entry& e : header.entries) {
    Tensor t = empty(e.shape, e.dtype);
    if (e.end > e.begin) {
      in.seekg(static_cast<std::streamoff>(header.data_start + e.begin));
      in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(e.end - e.begin));
      GG_CHECK(in.good(), "[safetensors] {}: reading the data of tensor '{}' failed", path, e.name);
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace safetensors

void save(const nn::Module& module, const std::string& path) { save(module, path, {}); }

void save(const nn::Module& module, const std::string& path, const Metadata& metadata) {
  safetensors::write(path, module.named_tensors(), metadata);
}

void load(nn::Module& module, const std::string& path) {
  safetensors::File file = safetensors::read(path);
  const nn::NamedTensors expected = module.named_tensors();
  std::unordered_map<std::string, const Tensor*> in_file;
  for (const auto& [name, t] : file.tensors) in_file[name] = &t;
  std::set<std::string> wanted;
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, t] : expected) {
    wanted.insert(name);
    if (!in_file.count(name)) missing.push_back(name);
  }
  for (const auto& [name, t] : file.tensors)
    if (!wanted.count(name)) unexpected.push_back(name);
  GG_CHECK(missing.empty() && unexpected.empty(),
           "[load] {}: the file does not match the module: missing keys: [{}]; unexpected keys: "
           "[{}]",
           path, fmt::join(missing, ", "), fmt::join(unexpected, ", "));
  for (const auto& [name, t] : expected) {
    const Tensor& src = *in_file.at(name);
    GG_CHECK(src.shape() == t.shape(),
             "[load] {}: '{}' has shape {} in the file but {} in the module", path, name,
             shape_str(src.shape()), shape_str(t.shape()));
    GG_CHECK(src.dtype() == t.dtype() || (src.is_floating_point() && t.is_floating_point()),
             "[load] {}: '{}' is {} in the file but {} in the module", path, name,
             dtype_name(src.dtype()), dtype_name(t.dtype()));
  }
  NoGradGuard no_grad;
  for (const auto& [name, t] : expected) copy_(t, *in_file.at(name));
}

namespace {
constexpr const char* kOptimizerFormat = "groupgrad.optimizer";

double parse_double(const std::string& path, const Metadata& m, const std::string& key) {
  auto it = m.find(key);
  GG_CHECK(it != m.end(), "[load_optimizer] {}: the metadata lacks '{}'", path, key);
  try {
    size_t used = 0;
    const double v = std::stod(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  fail("[load_optimizer] {}: metadata '{}' = '{}' is not a number", path, key, it->second);
}
}  // namespace

void save_optimizer(const optim::Optimizer& optimizer, const std::string& path,
                    const Metadata& metadata) {
  Metadata meta;
  for (const auto& [k, v] : metadata) {
    GG_CHECK(k.rfind("gg.", 0) != 0, "[save_optimizer] {}: metadata key '{}' is reserved ('gg.')",
             path, k);
    meta[k] = v;
  }
  meta["gg.format"] = kOptimizerFormat;
  meta["gg.optimizer"] = optimizer.name();
  meta["gg.lr"] = fmt::format("{}", optimizer.lr());
  meta["gg.initial_lr"] = fmt::format("{}", optimizer.initial_lr());
  meta["gg.num_params"] = fmt::format("{}", optimizer.parameters().size());
  safetensors::write(path, optimizer.state_dict(), meta);
}

Metadata load_optimizer(optim::Optimizer& optimizer, const std::string& path) {
  safetensors::File file = safetensors::read(path);
  const Metadata& m = file.metadata;
  auto get = [&](const std::string& key) {
    auto it = m.find(key);
    return it == m.end() ? std::string() : it->second;
  };
  GG_CHECK(get("gg.format") == kOptimizerFormat,
           "[load_optimizer] {}: not an optimizer checkpoint (its metadata lacks gg.format = {})",
           path, kOptimizerFormat);
  GG_CHECK(get("gg.optimizer") == optimizer.name(),
           "[load_optimizer] {}: the file holds {} state but the optimizer is {}", path,
           get("gg.optimizer"), optimizer.name());
  GG_CHECK(get("gg.num_params") == std::to_string(optimizer.parameters().size()),
           "[load_optimizer] {}: the file holds state for {} parameters but the optimizer has {}",
           path, get("gg.num_params"), optimizer.parameters().size());
  const double lr = parse_double(path, m, "gg.lr");
  const double initial_lr = parse_double(path, m, "gg.initial_lr");
  GG_CHECK(lr >= 0 && initial_lr >= 0,
           "[load_optimizer] {}: negative learning rate in the metadata (lr {}, initial lr {})",
           path, lr, initial_lr);
  try {
    optimizer.load_state_dict(file.tensors);
  } catch (const Error& e) {
    fail("[load_optimizer] {}: {}", path, e.what());
  }
  optimizer.set_lr(lr);
  optimizer.set_initial_lr(initial_lr);
  Metadata user;
  for (const auto& [k, v] : m)
    if (k.rfind("gg.", 0) != 0) user[k] = v;
  return user;
}

}  // namespace gg
