#include "nn/serialization.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>

#include "autograd/grad_mode.hpp"
#include "core/copy.hpp"
#include "core/error.hpp"
#include "core/utf8.hpp"

namespace gg {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this code writes and reads it natively");

namespace safetensors {

namespace {

using json = nlohmann::json;

// The safetensors reference implementation refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A safetensors header nests three levels deep (top object, tensor object, shape array); a
// deeper one is refused while parsing, before anything recursive (dump, destruction) meets it.
constexpr int kMaxJsonDepth = 8;
// Untrusted text (names, JSON values, parser messages) is cut to this many bytes in messages.
constexpr size_t kMaxShown = 120;

// `s` for a message: bytes that are not printable ASCII as \xNN, cut after kMaxShown bytes.
std::string shown(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == kMaxShown) {
      out += fmt::format("... ({} bytes)", s.size());
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f)
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

// Appends a compact rendering of `v` (dump()'s form) to `out`, stopping once `out` is over
// kMaxShown bytes: untrusted JSON is never rendered whole into a message.
void render(const nlohmann::json& v, std::string& out) {
  if (v.is_array() || v.is_object()) {
    out += v.is_array() ? '[' : '{';
    bool first = true;
    for (const auto& [key, value] : v.items()) {
      if (out.size() > kMaxShown) {
        out += fmt::format("... ({} entries)", v.size());
        break;
      }
      if (!first) out += ',';
      first = false;
      if (v.is_object()) out += fmt::format("\"{}\":", shown(key));
      render(value, out);
    }
    out += v.is_array() ? ']' : '}';
  } else if (v.is_string()) {
    out += fmt::format("\"{}\"", shown(v.get_ref<const std::string&>()));
  } else {
    out += v.dump();  // a number, bool or null: short
  }
}

std::string brief(const nlohmann::json& v) {
  std::string out;
  render(v, out);
  return out;
}

// JSON strings must be UTF-8; checked before a file is touched, with the offending string shown.
void check_utf8(const char* op, const std::string& path, std::string_view what,
                const std::string& s) {
  const std::optional<size_t> at = invalid_utf8_at(s);
  GG_CHECK(!at,
           "[{}] {}: {} '{}' is not valid UTF-8 (byte 0x{:02x} at offset {}); safetensors "
           "headers are JSON, whose strings must be UTF-8",
           op, path, what, shown(s), static_cast<unsigned char>(s[at.value_or(0)]), at.value_or(0));
}

std::string_view dtype_code(Dtype dtype) { return dtype_traits(dtype).safetensors; }

std::optional<Dtype> dtype_from_code(std::string_view code) {
  // Every dtype of the traits table, which runs in the enum's order up to Int64.
  for (int i = 0; i <= static_cast<int>(Dtype::Int64); ++i)
    if (dtype_code(static_cast<Dtype>(i)) == code) return static_cast<Dtype>(i);
  return std::nullopt;
}

std::string errno_str() { return std::strerror(errno); }

// Temporary files are named ".<target name>.tmp.<pid>.<n>" and locked (flock) by their writer
// from creation until they are renamed or removed. A writer killed midway leaves its file behind,
// unlocked: the kernel drops the lock of a dead process.
bool is_temp_name_of(std::string_view name, std::string_view target) {
  const std::string prefix = fmt::format(".{}.tmp.", target);
  if (name.substr(0, prefix.size()) != prefix) return false;
  name.remove_prefix(prefix.size());
  const size_t dot = name.find('.');
  auto digits = [](std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return dot != std::string_view::npos && digits(name.substr(0, dot)) &&
         digits(name.substr(dot + 1));
}

// Removes the temporary files that earlier saves to `target` left behind when they were killed:
// regular files of exactly that name pattern, owned by this user, that no process holds locked.
// Anything else (other names, links, directories, other users' files, live writers' files) is
// left alone. Best effort: a file that cannot be examined is skipped.
void remove_stale_temporaries(const std::filesystem::path& dir, const std::string& target) {
  DIR* listing = ::opendir(dir.c_str());
  if (listing == nullptr) return;
  const int dir_fd = ::dirfd(listing);
  while (const dirent* e = ::readdir(listing)) {
    const std::string_view name = e->d_name;
    if (!is_temp_name_of(name, target)) continue;
    const int fd = ::openat(dir_fd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat held {
    }, now{};
    if (::fstat(fd, &held) == 0 && S_ISREG(held.st_mode) && held.st_uid == ::geteuid() &&
        ::flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        ::fstatat(dir_fd, e->d_name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_dev == held.st_dev &&
        now.st_ino == held.st_ino)
      ::unlinkat(dir_fd, e->d_name, 0);
    ::close(fd);
  }
  ::closedir(listing);
}

// Writes to a temporary file beside the target and renames it over the target on commit(); the
// destructor removes the temporary if commit() was never reached.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    static std::atomic<uint64_t> counter{0};
    std::filesystem::path target(path_);
    dir_ = target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path();
    remove_stale_temporaries(dir_, target.filename().string());
    // A name can be taken by a dead process's file (pid reuse) or the file removed by a
    // concurrent save's cleanup between our open and our lock: then take the next name.
    for (int attempt = 0; fd_ < 0; ++attempt) {
      tmp_ = (dir_ / fmt::format(".{}.tmp.{}.{}", target.filename().string(), ::getpid(),
                                 counter.fetch_add(1)))
                 .string();
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      const bool retry = (fd_ < 0 && errno == EEXIST) || (fd_ >= 0 && !lock_and_check_linked());
      GG_CHECK(fd_ >= 0 || (retry && attempt < 100),
               "[save] {}: cannot create the temporary file {}: {}", path_, tmp_, errno_str());
    }
  }
  ~AtomicFile() {
    if (!committed_) ::unlink(tmp_.c_str());
    if (fd_ >= 0) ::close(fd_);
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
    // Renamed while still open, so the lock keeps other saves' cleanup away until it is done.
    GG_CHECK(::rename(tmp_.c_str(), path_.c_str()) == 0,
             "[save] {}: renaming {} over it failed: {}", path_, tmp_, errno_str());
    committed_ = true;
    ::close(fd_);  // after a successful fsync, nothing is left to report
    fd_ = -1;
    // Make the rename itself durable; a failure here leaves a complete file, so it is not fatal.
    const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      (void)::fsync(dir_fd);
      ::close(dir_fd);
    }
  }

 private:
  // Locks the new file; false (the fd closed) if another save's cleanup removed it meanwhile.
  // Where flock is not supported the file stays unlocked, and cleanup, which cannot lock it
  // either, removes nothing there.
  bool lock_and_check_linked() {
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && st.st_nlink > 0) return true;
    ::close(fd_);
    fd_ = -1;
    return false;
  }

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
  const std::string who = shown(name);  // the file's own name for it, cut for messages
  GG_CHECK(v.is_object(), "[safetensors] {}: tensor '{}' must be a JSON object, got {}", path, who,
           v.type_name());
  for (const auto& [field, value] : v.items()) {
    GG_CHECK(field == "dtype" || field == "shape" || field == "data_offsets",
             "[safetensors] {}: tensor '{}' has an unknown field '{}' (expected dtype, shape, "
             "data_offsets)",
             path, who, shown(field));
  }
  for (const char* field : {"dtype", "shape", "data_offsets"})
    GG_CHECK(v.contains(field), "[safetensors] {}: tensor '{}' lacks the field '{}'", path, who,
             field);

  Entry e{name, kFloat32, {}, 0, 0};
  const json& dtype = v["dtype"];
  GG_CHECK(dtype.is_string(), "[safetensors] {}: tensor '{}' has a non-string dtype {}", path, who,
           brief(dtype));
  const std::string code = dtype.get<std::string>();
  std::optional<Dtype> d = dtype_from_code(code);
  GG_CHECK(d.has_value(),
           "[safetensors] {}: tensor '{}' has unknown dtype '{}' (supported: F32, F64, BF16, F16, "
           "I8, I32, I64)",
           path, who, shown(code));
  e.dtype = *d;

  const json& shape = v["shape"];
  GG_CHECK(shape.is_array(), "[safetensors] {}: tensor '{}' has a shape that is not an array: {}",
           path, who, brief(shape));
  GG_CHECK(shape.size() <= 16, "[safetensors] {}: tensor '{}' has {} dimensions (at most 16)", path,
           who, shape.size());
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& s : shape) {
    std::optional<uint64_t> n = as_unsigned(s);
    GG_CHECK(n.has_value() && *n <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
             "[safetensors] {}: tensor '{}' has an invalid shape {} (sizes must be non-negative "
             "integers)",
             path, who, brief(shape));
    e.shape.push_back(static_cast<int64_t>(*n));
    overflow = overflow || __builtin_mul_overflow(numel, *n, &numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, element_size(e.dtype), &nbytes);
  GG_CHECK(!overflow, "[safetensors] {}: tensor '{}' with shape {} is too large", path, who,
           brief(shape));

  const json& offsets = v["data_offsets"];
  std::optional<uint64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = as_unsigned(offsets[0]);
    end = as_unsigned(offsets[1]);
  }
  GG_CHECK(begin && end && *begin <= *end,
           "[safetensors] {}: tensor '{}' has invalid data_offsets {} (expected [begin, end] with "
           "0 <= begin <= end)",
           path, who, brief(offsets));
  e.begin = *begin;
  e.end = *end;
  GG_CHECK(e.end - e.begin == nbytes,
           "[safetensors] {}: tensor '{}' has data_offsets [{}, {}) holding {} bytes, but {} {} "
           "needs {} bytes",
           path, who, e.begin, e.end, e.end - e.begin, code, brief(shape), nbytes);
  GG_CHECK(e.end <= data_size,
           "[safetensors] {}: tensor '{}' has data_offsets [{}, {}) outside the data section "
           "({} bytes)",
           path, who, e.begin, e.end, data_size);
  return e;
}

// write() on behalf of `op` (the public entry point, named in messages).
void write_file(const char* op, const std::string& path, const nn::NamedTensors& tensors,
                const Metadata& metadata) {
  GG_CHECK(!path.empty(), "[{}] the path is empty", op);
  NoGradGuard no_grad;
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    GG_CHECK(name != "__metadata__", "[{}] {}: '__metadata__' is reserved, not a tensor name", op,
             path);
    check_utf8(op, path, "the tensor name", name);
    GG_CHECK(names.insert(name).second, "[{}] {}: the tensor name '{}' appears twice", op, path,
             name);
    GG_CHECK(t.defined(), "[{}] {}: tensor '{}' is undefined", op, path, name);
  }
  for (const auto& [key, value] : metadata) {
    check_utf8(op, path, "the metadata key", key);
    check_utf8(op, path, fmt::format("the metadata value of '{}'", shown(key)), value);
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

}  // namespace

void write(const std::string& path, const nn::NamedTensors& tensors, const Metadata& metadata) {
  write_file("save", path, tensors, metadata);
}

namespace {

// A file opened for reading only if it is a regular file: a FIFO, device or directory is refused
// instead of blocking in open() or read() (O_NONBLOCK makes opening a FIFO return at once; fstat
// of the open descriptor then decides, so the file cannot be swapped between check and use).
class InputFile {
 public:
  explicit InputFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    GG_CHECK(fd_ >= 0, "[safetensors] {}: cannot open the file: {}", path, errno_str());
    struct stat st {};
    GG_CHECK(::fstat(fd_, &st) == 0, "[safetensors] {}: cannot read the file size: {}", path,
             errno_str());
    GG_CHECK(S_ISREG(st.st_mode),
             "[safetensors] {}: not a regular file (it is {}); only regular "
             "files are read",
             path, kind(st.st_mode));
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~InputFile() { ::close(fd_); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const { return size_; }

  // Reads exactly n bytes at `offset`; false if the file ends first or a read fails.
  bool read_at(uint64_t offset, void* data, uint64_t n) const {
    char* p = static_cast<char*>(data);
    while (n > 0) {
      const ssize_t r =
          ::pread(fd_, p, std::min<uint64_t>(n, uint64_t{1} << 30), static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      p += r;
      offset += static_cast<uint64_t>(r);
      n -= static_cast<uint64_t>(r);
    }
    return true;
  }

 private:
  static const char* kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
  }

  int fd_ = -1;
  uint64_t size_ = 0;
};

struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  Metadata metadata;
  uint64_t data_start = 0;
};

// Reads and validates the header of an open file: everything but the tensor bytes.
Header read_header(const std::string& path, const InputFile& in) {
  const uint64_t file_size = in.size();
  GG_CHECK(file_size >= 8,
           "[safetensors] {}: the file is {} bytes, too short for the 8-byte header length", path,
           file_size);
  uint64_t header_len = 0;
  GG_CHECK(in.read_at(0, &header_len, sizeof(header_len)),
           "[safetensors] {}: reading the header length failed", path);
  GG_CHECK(header_len <= file_size - 8,
           "[safetensors] {}: header length {} exceeds the file size ({} bytes, {} after the "
           "8-byte length)",
           path, header_len, file_size, file_size - 8);
  GG_CHECK(header_len <= kMaxHeaderBytes,
           "[safetensors] {}: header length {} is over the {}-byte limit", path, header_len,
           kMaxHeaderBytes);
  std::string text(header_len, '\0');
  GG_CHECK(in.read_at(8, text.data(), header_len),
           "[safetensors] {}: reading the {}-byte header failed", path, header_len);

  // JSON objects silently keep the last of duplicate keys; a parser callback catches them, and
  // stops at the first array or object nested deeper than kMaxJsonDepth.
  struct TooDeep {};
  std::set<std::string> top_keys;
  std::optional<std::string> duplicate;
  json header;
  try {
    header = json::parse(text, [&](int depth, json::parse_event_t event, json& parsed) {
      if ((event == json::parse_event_t::object_start ||
           event == json::parse_event_t::array_start) &&
          depth >= kMaxJsonDepth)
        throw TooDeep{};
      if (event == json::parse_event_t::key && depth == 1 && !duplicate &&
          !top_keys.insert(parsed.get<std::string>()).second)
        duplicate = parsed.get<std::string>();
      return true;
    });
  } catch (const TooDeep&) {
    fail(
        "[safetensors] {}: the header nests arrays or objects deeper than {} levels (a "
        "safetensors header needs 3)",
        path, kMaxJsonDepth);
  } catch (const json::exception& e) {
    fail("[safetensors] {}: the header is not valid JSON: {}", path, shown(e.what()));
  }
  GG_CHECK(header.is_object(), "[safetensors] {}: the header must be a JSON object, got {}", path,
           header.type_name());
  GG_CHECK(!duplicate, "[safetensors] {}: the header names '{}' twice", path,
           shown(duplicate.value_or("")));

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
                 path, shown(k), brief(v));
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
             path, shown(furthest ? furthest->name : ""), furthest ? furthest->begin : 0,
             furthest ? furthest->end : 0, shown(e.name), e.begin, e.end);
    furthest = &e;
  }

  out.data_start = 8 + header_len;
  return out;
}

}  // namespace

Metadata read_metadata(const std::string& path) {
  const InputFile in(path);
  return read_header(path, in).metadata;
}

File read(const std::string& path) {
  const InputFile in(path);
  Header header = read_header(path, in);
  File out;
  out.metadata = std::move(header.metadata);
  for (const Entry& e : header.entries) {
    Tensor t = empty(e.shape, e.dtype);
    if (e.end > e.begin) {
      GG_CHECK(in.read_at(header.data_start + e.begin, t.raw_data(), e.end - e.begin),
               "[safetensors] {}: reading the data of tensor '{}' failed", path, shown(e.name));
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

void save(const std::shared_ptr<nn::Module>& module, const std::string& path,
          const Metadata& metadata) {
  GG_CHECK(module != nullptr, "[save] {}: the module is a null shared_ptr", path);
  save(*module, path, metadata);
}

void load(const std::shared_ptr<nn::Module>& module, const std::string& path) {
  GG_CHECK(module != nullptr, "[load] {}: the module is a null shared_ptr", path);
  load(*module, path);
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
    if (!wanted.count(name)) unexpected.push_back(safetensors::shown(name));
  if (unexpected.size() > 32) {  // the file's names: a message lists a sample of them
    const size_t all = unexpected.size();
    unexpected.resize(32);
    unexpected.push_back(fmt::format("... ({} in all)", all));
  }
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

// Per-group learning rates, "0.001,0.0001": absent in checkpoints written before parameter
// groups existed (an empty result), else one non-negative number per group of the optimizer.
std::vector<double> parse_group_lrs(const std::string& path, const Metadata& m,
                                    const std::string& key, size_t groups) {
  if (m.find(key) == m.end()) return {};
  std::vector<double> lrs;
  const std::string& text = m.at(key);
  for (size_t begin = 0; begin <= text.size();) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    lrs.push_back(parse_double(path, {{key, text.substr(begin, end - begin)}}, key));
    GG_CHECK(lrs.back() >= 0, "[load_optimizer] {}: negative learning rate in '{}' = '{}'", path,
             key, text);
    begin = end + 1;
  }
  GG_CHECK(lrs.size() == groups,
           "[load_optimizer] {}: '{}' holds {} learning rates but the optimizer has {} parameter "
           "groups",
           path, key, lrs.size(), groups);
  return lrs;
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
  std::vector<double> lrs, initial_lrs;
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) {
    lrs.push_back(optimizer.group_lr(g));
    initial_lrs.push_back(optimizer.group_initial_lr(g));
  }
  meta["gg.group_lrs"] = fmt::format("{}", fmt::join(lrs, ","));
  meta["gg.group_initial_lrs"] = fmt::format("{}", fmt::join(initial_lrs, ","));
  safetensors::write_file("save_optimizer", path, optimizer.state_dict(), meta);
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
  const size_t groups = optimizer.num_param_groups();
  const std::vector<double> lrs = parse_group_lrs(path, m, "gg.group_lrs", groups);
  const std::vector<double> initial_lrs = parse_group_lrs(path, m, "gg.group_initial_lrs", groups);
  try {
    optimizer.load_state_dict(file.tensors);
  } catch (const Error& e) {
    fail("[load_optimizer] {}: {}", path, e.what());
  }
  optimizer.set_lr(lr);
  optimizer.set_initial_lr(initial_lr);
  for (size_t g = 0; g < lrs.size(); ++g) optimizer.set_group_lr(g, lrs[g]);
  for (size_t g = 0; g < initial_lrs.size(); ++g) optimizer.set_group_initial_lr(g, initial_lrs[g]);
  Metadata user;
  for (const auto& [k, v] : m)
    if (k.rfind("gg.", 0) != 0) user[k] = v;
  return user;
}

}  // namespace gg
