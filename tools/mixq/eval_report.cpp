#include "eval_report.h"

#include <cstdio>

#include "common.h"

namespace mixq::cli {

void print_eval(const EvalResult& r, const std::string& model, const Dataset& data, const std::string& reference,
                const std::string& suffix) {
  if (r.has_top1)
    std::printf("%s on %s: top-1 %.2f%% (%lld/%lld), loss %.4f, %.2f s (%.0f samples/s)%s\n", model.c_str(),
                data.describe().c_str(), r.top1, (long long)r.correct, (long long)r.samples, r.loss, r.seconds,
                r.samples / r.seconds, suffix.c_str());
  else
    std::printf("%s on %s: %lld samples, %.2f s (%.0f samples/s)%s%s\n", model.c_str(), data.describe().c_str(),
                (long long)r.samples, r.seconds, r.samples / r.seconds, suffix.c_str(),
                data.has_labels() ? " (no top-1: the first output is not [batch, classes] scores)" : "");
  if (r.reference_score) std::printf("reference %s: top-1 %.2f%%\n", reference.c_str(), r.reference_score->top1);
  if (!r.fidelity.empty()) std::printf("fidelity to %s:\n%s", reference.c_str(), fidelity_text(r.fidelity).c_str());
}

}  // namespace mixq::cli
