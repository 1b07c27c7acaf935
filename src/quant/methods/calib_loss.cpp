#include "quant/methods/calib_loss.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "exec/evaluate.h"

namespace mixq {

namespace {
// The summed (not averaged) loss of one batch; divided by the subset's sample count (or the float
// outputs' squared norm for the noise loss) it is that batch's share.
at::Tensor summed_loss(const at::Tensor& zf, const at::Tensor& z, bool classes, const at::Tensor& labels) {
  at::Tensor zd = z.to(at::kDouble), zfd = zf.to(at::kDouble);
  if (!classes) return (zd - zfd).pow(2).sum();
  at::Tensor lq = at::log_softmax(zd, 1);
  if (labels.defined()) return at::nll_loss(lq, labels, {}, at::Reduction::Sum);
  at::Tensor lpf = at::log_softmax(zfd, 1);
  return (lpf.exp() * (lpf - lq)).sum();
}
}  // namespace

double calibration_loss(const at::Tensor& zf, const at::Tensor& z, bool classes, const at::Tensor& labels) {
  const double s = summed_loss(zf, z, classes, labels).item<double>();
  if (!classes) return s / std::max(zf.to(at::kDouble).pow(2).sum().item<double>(), 1e-30);
  return s / static_cast<double>(std::max<int64_t>(z.size(0), 1));
}

CalibSubset::CalibSubset(Executor& fp, const Dataset& data, int64_t batch, const std::string& model) : model_(model) {
  std::vector<at::Tensor> labels;
  for (int64_t b = 0; b < data.size(); b += batch) {
    Batch bt = data.get(b, std::min(data.size(), b + batch));
    bool classes = true;
    at::Tensor zf = comparable_outputs(fp.run(bt.inputs), &classes, model_);
    classes_ = classes_ && classes;
    if (bt.labels.defined()) labels.push_back(bt.labels);
    begin_.push_back(samples_);
    samples_ += zf.size(0);
    zf_norm2_ += zf.to(at::kDouble).pow(2).sum().item<double>();
    zf_.push_back(zf.detach());
    inputs_.push_back(std::move(bt.inputs));
  }
  // Cross-entropy needs labels for every sample and class scores to apply them to.
  if (classes_ && !labels.empty() && labels.size() == zf_.size()) labels_ = at::cat(labels);
  if (has_labels()) float_loss_ = calibration_loss(at::cat(zf_), at::cat(zf_), true, labels_);
}

const char* CalibSubset::loss_name() const { return has_labels() ? "cross-entropy" : "fidelity to the float outputs"; }

at::Tensor CalibSubset::batch_share(size_t b, const std::vector<at::Tensor>& outs) const {
  bool classes = true;
  at::Tensor z = comparable_outputs(outs, &classes, model_);
  at::Tensor lab;
  if (labels_.defined()) lab = labels_.narrow(0, begin_[b], z.size(0));
  at::Tensor s = summed_loss(zf_[b], z, classes_, lab);
  if (!classes_) return s / std::max(zf_norm2_, 1e-30);
  return s / static_cast<double>(std::max<int64_t>(samples_, 1));
}

double CalibSubset::loss(Executor& q) const {
  double total = 0;
  for (size_t b = 0; b < inputs_.size(); ++b) total += batch_share(b, q.run(inputs_[b])).item<double>();
  return total;
}

}  // namespace mixq
