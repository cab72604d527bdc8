#pragma once
// A one-line progress bar for training loops:
//   [##########----------]  500/1000  loss 2.013  lr 1.5e-03  9.1k tok/s  ETA 1:02
// On a terminal it redraws in place (carriage return); otherwise (a pipe, a log file, ctest) it
// prints a plain line about every tenth of the run, so logs stay readable. Log lines go through
// log(), which clears the bar first and redraws it after.
#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <string>
#include <utility>

namespace train {

inline std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02}", s / 60, s % 60);
}

inline std::string format_rate(double per_second) {
  return per_second >= 1e6   ? fmt::format("{:.2f}M", per_second / 1e6)
         : per_second >= 1e3 ? fmt::format("{:.1f}k", per_second / 1e3)
                             : fmt::format("{:.0f}", per_second);
}

class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;

  // Steps first_step..total_steps are to run (first_step > 0 when resuming).
  ProgressBar(int64_t first_step, int64_t total_steps)
      : first_(first_step),
        total_(total_steps),
        tty_(isatty(fileno(stdout)) != 0),
        start_(Clock::now()) {
    window_.emplace_back(start_, 0);
  }

  // After step `step` (1-based count of steps done) with its loss and its predicted tokens.
  void update(int64_t step, double loss, double lr, int64_t tokens) {
    const auto now = Clock::now();
    tokens_ += tokens;
    window_.emplace_back(now, tokens_);
    while (window_.size() > 50) window_.pop_front();
    const double window_s = seconds(window_.front().first, now);
    tokens_per_s_ = window_s > 0 ? (tokens_ - window_.front().second) / window_s : 0;
    const double per_step = seconds(start_, now) / static_cast<double>(step - first_);
    line_ = render(step, loss, lr, per_step * static_cast<double>(total_ - step));
    if (tty_) {
      // At most ~10 redraws a second: a terminal need not see every step.
      if (now - last_draw_ >= std::chrono::milliseconds(100) || step == total_) {
        draw();
        last_draw_ = now;
      }
    } else if ((step - first_) % std::max<int64_t>(1, (total_ - first_) / 10) == 0 ||
               step == total_) {
      std::fputs((line_ + "\n").c_str(), stdout);
      std::fflush(stdout);
    }
  }

  // Ends the bar's line (after the last step).
  void finish() {
    if (tty_ && !line_.empty()) std::fputs("\n", stdout);
    line_.clear();
  }

  // Logs through spdlog without tearing the bar.
  void log(const std::string& line) {
    clear();
    spdlog::info("{}", line);
    draw();
  }

  double tokens_per_s() const { return tokens_per_s_; }
  // Mean rate since the bar started.
  double mean_tokens_per_s() const {
    const double s = seconds(start_, Clock::now());
    return s > 0 ? static_cast<double>(tokens_) / s : 0;
  }
  double elapsed_s() const { return seconds(start_, Clock::now()); }

 private:
  static double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }

  std::string render(int64_t step, double loss, double lr, double eta_s) const {
    constexpr int kWidth = 24;
    const auto filled = static_cast<int>(kWidth * step / std::max<int64_t>(1, total_));
    const int digits = static_cast<int>(std::to_string(total_).size());
    return fmt::format("[{}{}] {:>{}}/{}  loss {:.4f}  lr {:.2e}  {} tok/s  ETA {}",
                       std::string(filled, '#'), std::string(kWidth - filled, '-'), step, digits,
                       total_, loss, lr, format_rate(tokens_per_s_), format_duration(eta_s));
  }
  void draw() {
    if (!tty_ || line_.empty()) return;
    std::fputs(("\r" + line_ + "\033[K").c_str(), stdout);
    std::fflush(stdout);
  }
  void clear() {
    if (!tty_ || line_.empty()) return;
    std::fputs("\r\033[K", stdout);
    std::fflush(stdout);
  }

  int64_t first_, total_;
  bool tty_;
  Clock::time_point start_;
  Clock::time_point last_draw_{};
  std::deque<std::pair<Clock::time_point, int64_t>> window_;  // (time, tokens so far)
  int64_t tokens_ = 0;
  double tokens_per_s_ = 0;
  std::string line_;
};

}  // namespace train
