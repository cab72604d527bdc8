// Fuzzes the safetensors reader on arbitrary bytes: safetensors::read, read_metadata, and
// gg::load into a small module. Oracles: every input is read or rejected with gg::Error; a file
// that reads back is written again and must re-read to the same names, dtypes, shapes and bytes;
// a load that fails leaves the module untouched.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "fuzz_common.hpp"
#include "groupgrad.hpp"

namespace {

using namespace gg;

// What the seeds in corpus/fuzz_safetensors were saved from (see make_seeds.py).
struct Small : nn::Module {
  Small() {
    lin = register_module("lin", std::make_shared<nn::Linear>(3, 2));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(2));
    register_buffer("steps", zeros({1}, kInt64));
  }
  std::shared_ptr<nn::Linear> lin;
  std::shared_ptr<nn::LayerNorm> norm;
};

std::string temp_path(const char* tag) {
  return fmt::format("/tmp/gg_fuzz_safetensors_{}_{}.safetensors", ::getpid(), tag);
}

void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  fuzz::check(f != nullptr, "cannot create " + path);
  fuzz::check(size == 0 || std::fwrite(data, 1, size, f) == size, "cannot write " + path);
  std::fclose(f);
}

std::vector<uint8_t> bytes_of(const Tensor& t) {
  Tensor c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.raw_data());
  return {p, p + c.numel() * static_cast<int64_t>(c.element_size())};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = temp_path("in"), again = temp_path("again");
  static Small module;
  write_bytes(path, data, size);

  safetensors::File file;
  const bool read_ok = fuzz::result_or_error([&] { file = safetensors::read(path); });
  const bool meta_ok = fuzz::result_or_error([&] { (void)safetensors::read_metadata(path); });
  fuzz::check(read_ok == meta_ok, "read and read_metadata disagree on whether the header is valid");

  if (read_ok) {  // round trip: write what was read, read it again, compare
    fuzz::result_or_error([&] {
      safetensors::write(again, file.tensors, file.metadata);
      const safetensors::File back = safetensors::read(again);
      fuzz::check(back.metadata == file.metadata, "metadata changed in a round trip");
      fuzz::check(back.tensors.size() == file.tensors.size(), "tensor count changed");
      std::map<std::string, Tensor> by_name(back.tensors.begin(), back.tensors.end());
      for (const auto& [name, t] : file.tensors) {
        auto it = by_name.find(name);
        fuzz::check(it != by_name.end(), "tensor '" + name + "' lost in a round trip");
        fuzz::check(it->second.dtype() == t.dtype() && it->second.shape() == t.shape(),
                    "dtype or shape of '" + name + "' changed in a round trip");
        fuzz::check(bytes_of(it->second) == bytes_of(t), "bytes of '" + name + "' changed");
      }
    });
  }

  // load() validates everything before it copies: a failed load leaves the module as it was.
  std::vector<std::vector<uint8_t>> before;
  for (const auto& [name, t] : module.named_tensors()) before.push_back(bytes_of(t));
  const bool load_ok = fuzz::result_or_error([&] { load(module, path); });
  fuzz::check(!load_ok || read_ok, "load accepted a file that read rejects");
  if (!load_ok) {
    size_t i = 0;
    for (const auto& [name, t] : module.named_tensors())
      fuzz::check(bytes_of(t) == before[i++], "a failed load changed '" + name + "'");
  }
  return 0;
}
