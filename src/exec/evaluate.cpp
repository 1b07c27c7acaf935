#include "exec/evaluate.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/interrupt.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/npy.h"

namespace mixq {

bool looks_like_class_scores(const at::Tensor& out) {
  return out.dim() == 2 && out.size(1) >= 2 && at::isFloatingType(out.scalar_type());
}

at::Tensor comparable_outputs(const std::vector<at::Tensor>& outs, bool* classes, const std::string& model) {
  const at::Tensor& z0 = outs.at(0);
  *classes = outs.size() == 1 && looks_like_class_scores(z0);
  if (*classes) return z0.to(at::kFloat);
  std::vector<at::Tensor> parts;
  for (const auto& z : outs)
    if (at::isFloatingType(z.scalar_type()) && z.dim() >= 1 && z.size(0) == z0.size(0))
      parts.push_back(z.to(at::kFloat).reshape({z.size(0), -1}));
  MIXQ_CHECK(!parts.empty(), ErrorKind::kUnsupported, model, ": no float batch-first output to compare");
  return at::cat(parts, 1);
}

namespace {

// Adds a batch's top-1 hits and summed cross-entropy; false (nothing added) when `out` is not
// class scores. Labels outside the classes are a data error.
bool score_batch(const at::Tensor& out0, const at::Tensor& labels, const std::string& data, int64_t& correct,
                 double& loss_sum) {
  if (!labels.defined() || !looks_like_class_scores(out0) || out0.size(0) != labels.size(0)) return false;
  at::Tensor out = out0.detach().to(at::kFloat);
  MIXQ_CHECK(labels.min().item<int64_t>() >= 0 && labels.max().item<int64_t>() < out.size(1), ErrorKind::kInvalidData,
             "dataset ", data, ": labels outside [0, ", out.size(1), ") for a model with ", out.size(1), " classes");
  correct += out.argmax(1).eq(labels).sum().item<int64_t>();
  loss_sum += at::cross_entropy_loss(out, labels, {}, at::Reduction::Sum).item<double>();
  return true;
}

}  // namespace

int64_t auto_batch_size(Executor& ex, const Dataset& data, int64_t max_batch, size_t bytes) {
  MIXQ_CHECK(data.size() > 0, ErrorKind::kInvalidData, "dataset ", data.describe(), " is empty");
  // The largest per-sample value: node outputs whose first dimension is the batch (weights reshaped
  // by static nodes are not per-sample).
  const Graph& g = ex.graph();
  size_t biggest = 1;
  std::vector<int> ids;
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty())
        ids.push_back(ex.add_hook(o, [&biggest](const std::string&, at::Tensor& v) {
          if (v.defined() && v.dim() >= 1 && v.size(0) == 1) biggest = std::max(biggest, v.nbytes());
        }));
  try {
    ex.run(data.get(0, 1).inputs);
  } catch (...) {
    for (int id : ids) ex.remove_hook(id);
    throw;
  }
  for (int id : ids) ex.remove_hook(id);
  if (static_cast<size_t>(max_batch) * biggest <= bytes) return max_batch;
  int64_t b = 1;
  while (b < max_batch && static_cast<size_t>(2 * b) * biggest <= bytes) b *= 2;
  return b;
}

EvalResult evaluate(Executor& ex, const Dataset& data, const EvalOptions& opts) {
  std::vector<std::string> names;
  for (const auto& o : ex.graph().outputs) names.push_back(o.name);
  EvalOptions o = opts;
  if (o.batch_size <= 0 && data.size() > 0) o.batch_size = auto_batch_size(ex, data, kEvalMaxBatch);
  return evaluate([&ex](const std::vector<at::Tensor>& in) { return ex.run(in); }, names, ex.graph().source_path,
                  data, o);
}

EvalResult evaluate(const ModelFn& model, const std::vector<std::string>& names, const std::string& model_name,
                    const Dataset& data, const EvalOptions& opts) {
  MIXQ_CHECK(data.size() > 0, ErrorKind::kInvalidData, "dataset ", data.describe(), " is empty");
  MIXQ_CHECK(opts.batch_size >= 0, ErrorKind::kInvalidArgument, "batch size must be positive (or 0: automatic)");
  const int64_t batch_size = opts.batch_size > 0 ? opts.batch_size : kEvalMaxBatch;
  FidelityAccumulator fid(names);
  EvalResult r;
  r.has_top1 = data.has_labels();
  ClassScore ref;
  bool ref_scored = opts.reference && opts.reference_top1 && data.has_labels();
  double loss_sum = 0, ref_loss_sum = 0;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<at::Tensor>> kept(names.size());
  Progress bar(opts.label, opts.progress ? data.size() : 0, "img");
  for (int64_t b = 0; b < data.size(); b += batch_size) {
    throw_if_interrupted();
    int64_t e = std::min(data.size(), b + batch_size);
    Batch batch = data.get(b, e);
    std::vector<at::Tensor> out = model(batch.inputs);
    if (r.has_top1 && !score_batch(out.at(0), batch.labels, data.describe(), r.correct, loss_sum)) {
      r.has_top1 = false;  // labels, but the first output is not [batch, classes]: fidelity only
      log::verbose(model_name + ": output '" + names.at(0) + "' is not [batch, classes] scores: no top-1");
    }
    if (opts.reference) {
      std::vector<at::Tensor> want = opts.reference(batch, b, e);
      fid.add(want, out);
      if (ref_scored) ref_scored = score_batch(want.at(0), batch.labels, data.describe(), ref.correct, ref_loss_sum);
    }
    if (opts.keep_outputs)
      for (size_t i = 0; i < out.size(); ++i) kept[i].push_back(out[i].detach().clone());
    r.samples += e - b;
    if (r.has_top1) bar.set_postfix("top1 " + std::to_string(100.0 * r.correct / r.samples).substr(0, 5) + "%");
    bar.advance(e - b);
  }
  bar.finish();
  if (r.has_top1) {
    r.top1 = 100.0 * static_cast<double>(r.correct) / static_cast<double>(r.samples);
    r.loss = loss_sum / static_cast<double>(r.samples);
  } else {
    r.correct = 0;
  }
  if (ref_scored) {
    ref.top1 = 100.0 * static_cast<double>(ref.correct) / static_cast<double>(r.samples);
    ref.loss = ref_loss_sum / static_cast<double>(r.samples);
    r.reference_score = ref;
  }
  if (opts.reference) r.fidelity = fid.result();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (opts.keep_outputs)
    for (auto& v : kept) r.outputs.push_back(at::cat(v, 0));
  return r;
}

LeadMetric lead_metric(Metric requested, const EvalResult& r) {
  LeadMetric lm;
  lm.metric = resolve_metric(requested, r.has_top1);
  std::optional<double> v;
  if (lm.metric == Metric::kTop1 && r.has_top1) v = r.top1;
  else if (!r.fidelity.empty()) v = summary_value(lm.metric, r.fidelity);
  if (v && std::isfinite(*v)) lm.value = v;
  return lm;
}

void save_outputs(const std::string& path, const std::vector<std::string>& names, const EvalResult& r) {
  std::map<std::string, at::Tensor> arrays;
  for (size_t i = 0; i < names.size() && i < r.outputs.size(); ++i) arrays[names[i]] = r.outputs[i];
  save_npz(path, arrays);
}

ReferenceFn reference_executor(Executor& ref) {
  return [&ref](const Batch& batch, int64_t, int64_t) { return ref.run(batch.inputs); };
}

ReferenceFn reference_arrays(std::map<std::string, at::Tensor> arrays, const std::vector<ValueInfo>& outputs,
                             int64_t samples, const std::string& what) {
  std::vector<at::Tensor> ordered;
  for (const auto& o : outputs) {
    auto it = arrays.find(o.name);
    if (it == arrays.end() && outputs.size() == 1 && arrays.size() == 1) it = arrays.begin();
    std::string names;
    for (const auto& kv : arrays) names += " " + kv.first;
    MIXQ_CHECK(it != arrays.end(), ErrorKind::kInvalidData, what, ": no array for output '", o.name,
               "' (arrays present:", names, "); name the reference arrays after the model's outputs");
    ordered.push_back(it->second);
  }
  // Whole arrays when the data runs as one batch (outputs that are not batch-first, e.g. an
  // LSTM's [seq, dirs, batch, hidden], compare as stored); slices along axis 0 otherwise.
  return [ordered, samples, what, outputs](const Batch&, int64_t b, int64_t e) {
    std::vector<at::Tensor> out;
    for (size_t i = 0; i < ordered.size(); ++i) {
      const at::Tensor& t = ordered[i];
      if (b == 0 && e == samples) {
        out.push_back(t);
        continue;
      }
      MIXQ_CHECK(t.dim() >= 1 && t.size(0) == samples, ErrorKind::kInvalidData, what, ": output '", outputs[i].name,
                 "' holds ", t.dim() ? t.size(0) : 0, " rows along axis 0 but the data has ", samples,
                 " samples; evaluate in one batch (--batch ", samples, ") for outputs that are not batch-first");
      out.push_back(t.slice(0, b, e));
    }
    return out;
  };
}

}  // namespace mixq
