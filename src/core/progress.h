// A progress bar with rate and ETA on stderr, for long loops (evaluation, calibration, search).
// Redraws at most ~10 times a second; when stderr is not a terminal it prints a plain line every
// 10% instead, so logs stay readable. Disabled entirely at log level kQuiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace mixq {

// Where bars go instead of stderr when set (the Python module's callback or tqdm bar): called on
// the job's thread at most ~10 times a second per bar, and once more with final = true.
struct ProgressEvent {
  const std::string& label;
  const std::string& unit;
  int64_t done, total;
  double elapsed_seconds;
  bool final;
};
using ProgressSink = std::function<void(const ProgressEvent&)>;
void set_progress_sink(ProgressSink sink);  // an empty function: back to stderr

class Progress {
 public:
  // total: number of units (images, layers, iterations); unit: what they are called.
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(int64_t n = 1);
  void set_postfix(const std::string& text);  // e.g. "top1 91.2%"
  void finish();                              // final line; idempotent
  double elapsed_seconds() const;

 private:
  void draw(bool final);

  std::string label_, unit_, postfix_;
  int64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_decile_ = -1;
  std::shared_ptr<const ProgressSink> sink_;  // the sink when this bar started (null: stderr)
  bool enabled_, tty_, finished_ = false;
};

}  // namespace mixq
