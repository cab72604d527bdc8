#pragma once
// Reference-counted, 64-byte aligned, zero-initialised bytes that tensors and their views share.
// Big blocks (64 KiB and up) are recycled through a small per-thread cache (see storage.cpp).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace gg {

class Storage {
 public:
  // zero=false leaves the bytes uninitialised, for outputs that a kernel overwrites entirely.
  explicit Storage(size_t nbytes, bool zero = true);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() { return data_.get(); }
  const void* data() const { return data_.get(); }
  size_t nbytes() const { return nbytes_; }

  // The version counter of these bytes (PyTorch's VariableVersion), shared by every tensor that
  // views them (views, detach()): every in-place write through the public API (the in-place
  // methods, Tensor-level copy_) bumps it, and autograd compares it with the version a saved
  // tensor had when it was saved. Atomic: several threads may run forwards on shared parameters.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  void bump_version() { version_.fetch_add(1, std::memory_order_acq_rel); }

  // Live storages and their bytes, process-wide: lets tests show that memory stays flat.
  static int64_t live_count();
  static int64_t live_bytes();
  // The most bytes live at once since the last reset_peak_bytes() (for tools/bench).
  static int64_t peak_bytes();
  static void reset_peak_bytes();

 private:
  struct Free {
    void operator()(void* p) const;
  };
  size_t nbytes_;
  std::atomic<uint64_t> version_{0};
  std::unique_ptr<void, Free> data_;
};

}  // namespace gg
