#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <mutex>

#include "core/log.h"

namespace mixq {

namespace {
std::string format_duration(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600),
                  (long long)(t / 60 % 60), (long long)(t % 60));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}
std::mutex g_sink_mu;
std::shared_ptr<const ProgressSink> g_sink;

std::shared_ptr<const ProgressSink> current_sink() {
  std::lock_guard<std::mutex> lock(g_sink_mu);
  return g_sink;
}
}  // namespace

void set_progress_sink(ProgressSink sink) {
  std::lock_guard<std::mutex> lock(g_sink_mu);
  g_sink = sink ? std::make_shared<const ProgressSink>(std::move(sink)) : nullptr;
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total),
      start_(std::chrono::steady_clock::now()), last_draw_(start_), sink_(current_sink()),
      enabled_(total > 0 && (sink_ || log::level() >= log::Level::kInfo)), tty_(isatty(STDERR_FILENO) != 0) {
  if (sink_ && enabled_) draw(false);  // a sink's bar starts its clock now, not at the first update
}

Progress::~Progress() { finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(int64_t n) {
  done_ += n;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (tty_ || sink_) {
    if (now - last_draw_ > std::chrono::milliseconds(100) || done_ >= total_) {
      last_draw_ = now;
      draw(false);
    }
  } else {
    int decile = static_cast<int>(10 * done_ / total_);
    if (decile != last_decile_ && decile < 10) {
      last_decile_ = decile;
      draw(false);
    }
  }
}

void Progress::set_postfix(const std::string& text) { postfix_ = text; }

void Progress::draw(bool final) {
  double el = elapsed_seconds();
  if (sink_) {
    (*sink_)(ProgressEvent{label_, unit_, done_, total_, el, final});
    return;
  }
  double rate = el > 0 ? done_ / el : 0;
  double eta = rate > 0 ? (total_ - done_) / rate : -1;
  int pct = total_ > 0 ? static_cast<int>(100 * done_ / total_) : 100;
  const int width = 24;
  int filled = total_ > 0 ? static_cast<int>(width * done_ / total_) : width;
  std::string bar(filled, '#');
  bar.resize(width, '.');
  char line[512];
  std::snprintf(line, sizeof line, "%s [%s] %3d%% %lld/%lld %s, %.1f %s/s, %s %s%s%s",
                label_.c_str(), bar.c_str(), pct, (long long)done_, (long long)total_,
                unit_.c_str(), rate, unit_.c_str(), final ? "took" : "eta",
                format_duration(final ? el : eta).c_str(), postfix_.empty() ? "" : "  ",
                postfix_.c_str());
  if (tty_)
    std::fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line);
  std::fflush(stderr);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

}  // namespace mixq
