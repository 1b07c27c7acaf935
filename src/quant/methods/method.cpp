#include "quant/methods/method.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include "core/log.h"
#include "mixq/error.h"

namespace mixq {

void ReconOptions::scale_iters(int64_t n) {
  MIXQ_CHECK(n >= 1, ErrorKind::kInvalidArgument, "--iters must be >= 1 (got ", n, ")");
  const double f = static_cast<double>(n) / static_cast<double>(iters);
  auto scaled = [f](int64_t v) { return std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(v) * f + 0.5)); };
  act_iters = scaled(act_iters);
  adaquant_iters = scaled(adaquant_iters);
  bias_iters = scaled(bias_iters);
  iters = n;
}

const std::vector<MethodRow>& method_table() {
  using R = RangeMethod;
  static const std::vector<MethodRow> rows = {
      {"minmax", "min-max ranges", R::kMinMax, R::kMinMax, nullptr},
      {"mse", "Lp-optimal clipping (p = 2.4, BRECQ's grid)", R::kMse, R::kMse, nullptr},
      {"percentile", "central-percentile ranges", R::kPercentile, R::kPercentile, nullptr},
      {"kl", "min-max weights, KL/entropy activation ranges", R::kMinMax, R::kKl, nullptr},
      {"adaround", "AdaRound: learned rounding per layer (+ activation steps)", R::kMse, R::kMse, refine_adaround, true},
      {"brecq", "BRECQ: learned rounding per block (+ activation steps)", R::kMse, R::kMse, refine_brecq, true},
      {"adaquant", "AdaQuant: per layer weight/bias deltas and quantizer ranges", R::kMse, R::kMse, refine_adaquant, true},
      {"lapq", "LAPQ: Lp clipping at the loss-optimal p, then all ranges jointly on the loss", R::kMse, R::kMse,
       refine_lapq},
      {"lapq-init", "LAPQ's Lp clipping at the loss-optimal p alone (no joint search)", R::kMse, R::kMse,
       refine_lapq_init},
      {"multipoint", "Multipoint: extra low-bit points for the channels with the largest output error (--mp-extra)",
       R::kMse, R::kMse, refine_multipoint},
  };
  return rows;
}

std::vector<std::string> method_names() {
  std::vector<std::string> n;
  for (const auto& r : method_table()) n.push_back(r.name);
  return n;
}

const MethodRow& find_method(const std::string& name) {
  for (const auto& r : method_table())
    if (name == r.name) return r;
  std::string all;
  for (const auto& r : method_table()) all += std::string(all.empty() ? "" : ", ") + r.name;
  throw Error(ErrorKind::kInvalidArgument, "unknown method '" + name + "'; choose one of: " + all);
}

void method_say(const ReconOptions& o, const char* fmt, ...) {
  if (!o.progress) return;
  char line[240];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  log::info(line);
}

}  // namespace mixq
