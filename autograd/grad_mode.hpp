#pragma once
// Grad mode is thread-local: NoGradGuard in one thread never affects another.
namespace gg {

struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// RAII: disables recording for its scope, restoring the previous mode after (so guards nest).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// RAII, libtorch's c10::InferenceMode: for code that only runs forwards. Here it turns grad mode
// off for its scope, as NoGradGuard does (libtorch also skips version counting; gg does not), and
// restores both on exit; thread-local, nests. InferenceMode(false) inside one turns it back off
// for its own scope (and grad mode back on).
class InferenceMode {
 public:
  explicit InferenceMode(bool enabled = true);
  ~InferenceMode();
  InferenceMode(const InferenceMode&) = delete;
  InferenceMode& operator=(const InferenceMode&) = delete;
  static bool is_enabled();  // whether an InferenceMode(true) is the innermost one here

 private:
  bool previous_grad_;
  bool previous_inference_;
};

}  // namespace gg
