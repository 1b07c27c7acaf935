#include "exec/evaluate.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>

#include "core/progress.h"

namespace mixq {

EvalResult evaluate(Executor& ex, const Dataset& data, const EvalOptions& opts) {
  MIXQ_CHECK(data.has_labels(), ErrorKind::kInvalidData, "dataset ", data.describe(),
             " has no labels; accuracy needs them (add a 'labels' array)");
  MIXQ_CHECK(data.size() > 0, ErrorKind::kInvalidData, "dataset ", data.describe(), " is empty");
  MIXQ_CHECK(opts.batch_size > 0, ErrorKind::kInvalidArgument, "batch size must be positive");
  EvalResult r;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<at::Tensor> all_logits;
  double loss_sum = 0;
  Progress bar(opts.label, opts.progress ? data.size() : 0, "img");
  for (int64_t b = 0; b < data.size(); b += opts.batch_size) {
    int64_t e = std::min(data.size(), b + opts.batch_size);
    Batch batch = data.get(b, e);
    at::Tensor out = ex.run(batch.inputs).at(0);
    MIXQ_CHECK(out.dim() == 2 && out.size(0) == e - b && at::isFloatingType(out.scalar_type()),
               ErrorKind::kInvalidData, ex.graph().source_path, ": output '",
               ex.graph().outputs[0].name, "' has shape ", out.sizes(),
               "; top-1 accuracy needs [batch, classes] scores");
    out = out.to(at::kFloat);
    at::Tensor labels = batch.labels;
    MIXQ_CHECK(labels.min().item<int64_t>() >= 0 && labels.max().item<int64_t>() < out.size(1),
               ErrorKind::kInvalidData, "dataset ", data.describe(), ": labels outside [0, ",
               out.size(1), ") for a model with ", out.size(1), " classes");
    r.correct += out.argmax(1).eq(labels).sum().item<int64_t>();
    loss_sum += at::cross_entropy_loss(out, labels, {}, at::Reduction::Sum).item<double>();
    if (opts.keep_logits) all_logits.push_back(out.clone());
    r.samples += e - b;
    bar.set_postfix("top1 " + std::to_string(100.0 * r.correct / r.samples).substr(0, 5) + "%");
    bar.advance(e - b);
  }
  bar.finish();
  r.top1 = 100.0 * static_cast<double>(r.correct) / static_cast<double>(r.samples);
  r.loss = loss_sum / static_cast<double>(r.samples);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (opts.keep_logits) r.logits = at::cat(all_logits, 0);
  return r;
}

}  // namespace mixq
