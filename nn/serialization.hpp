#pragma once
// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
//   8 bytes   little-endian uint64 N, the header length
//   N bytes   JSON: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//                    "__metadata__": {"key": "value", ...}}   (optional, strings only)
//   the rest  raw little-endian tensor data; offsets are relative to the start of this section.
// dtype names: F32, F64, BF16, F16, I8, I32, I64. Files written here are read by Python's
// `safetensors` package and the other way round.
//
// Writes are atomic: a temporary file in the same directory is written, fsynced and renamed over
// the target. Reads validate the whole header before any data is used and throw gg::Error naming
// the file and the problem.
#include <map>
#include <memory>
#include <string>

#include "module.hpp"
#include "optim/optimizer.hpp"

namespace gg {

using Metadata = std::map<std::string, std::string>;

namespace safetensors {

struct File {
  nn::NamedTensors tensors;  // in file order (by data offset)
  Metadata metadata;
};

// Tensors are written back to back, wider element types first (a stable sort of the given order,
// as the reference writer does), so each one is aligned to its element size. Names must be unique
// and not "__metadata__"; every tensor must be defined.
void write(const std::string& path, const nn::NamedTensors& tensors, const Metadata& metadata = {});
File read(const std::string& path);
// Only the header's metadata (the header is validated in full; no tensor data is read).
Metadata read_metadata(const std::string& path);

}  // namespace safetensors

// A module's named_tensors() (parameters then buffers, dotted names), plus optional metadata.
void save(const nn::Module& module, const std::string& path);
void save(const nn::Module& module, const std::string& path, const Metadata& metadata);
// Loads into the module's existing tensors in place (handles stay valid). The file must hold
// exactly the module's names with the same shapes: missing keys, unexpected keys and shape
// mismatches throw before anything is changed. Floating data is converted to the tensor's dtype.
// safetensors::read_metadata(path) gives the file's metadata.
void load(nn::Module& module, const std::string& path);
// The same for a module held by a shared_ptr, in libtorch's torch::save(module, path) /
// torch::load(module, path) order (a shared_ptr to any Module subclass converts). A null pointer
// is a gg::Error.
void save(const std::shared_ptr<nn::Module>& module, const std::string& path,
          const Metadata& metadata = {});
void load(const std::shared_ptr<nn::Module>& module, const std::string& path);

// Optimizer state (optimizer.state_dict()) plus its name, lr, initial lr, parameter count and
// each parameter group's lr and initial lr ("gg.group_lrs", "gg.group_initial_lrs") in the
// metadata; `metadata` adds the caller's own entries (keys must not start with "gg.").
void save_optimizer(const optim::Optimizer& optimizer, const std::string& path,
                    const Metadata& metadata = {});
// Restores the state, lr and initial lr (per group; a file without per-group entries, written
// before groups existed, sets every group's from its lr and initial lr). Throws if the file holds
// another optimizer's state or another number of parameters. Returns the caller's metadata entries.
Metadata load_optimizer(optim::Optimizer& optimizer, const std::string& path);

}  // namespace gg
