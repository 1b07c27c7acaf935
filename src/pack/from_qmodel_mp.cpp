// Multipoint layers (quant/multipoint.h) for the runtime: each extra point becomes one more output
// channel of the same layer, in the same low-bit arithmetic (per-channel scale and zero point), and
// a MultipointSum node after the layer adds every extra channel's output to its parent channel's
// (runtime/ops_multipoint.cpp). A grouped convolution keeps equal groups: every group gets as many
// extra channels as its busiest one, the unused ones all zero codes (a depthwise layer with points
// on a few channels thus runs one more depthwise pass).
#include "pack/from_qmodel.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>

#include "mixq/error.h"
#include "quant/multipoint.h"

namespace mixq {

MultipointLayout multipoint_layout(const QuantizedWeight& qw, int64_t groups) {
  const int64_t rank = qw.codes.dim();
  const int64_t a = qw.extra_axis < 0 ? qw.extra_axis + rank : qw.extra_axis;
  const int64_t C = qw.codes.size(a);
  MIXQ_CHECK(qw.scheme.granularity != Granularity::kPerGroup && groups >= 1 && C % groups == 0,
             ErrorKind::kUnsupported, "multipoint weight '", qw.weight, "' of node '", qw.node,
             "': extra points need per-tensor or per-channel weights and whole groups");
  const at::Tensor rows = channel_rows(qw.codes, a);
  const int64_t K = rows.size(1);
  auto per_channel = [C](const at::Tensor& t) {
    at::Tensor f = t.to(at::kFloat).reshape({-1});
    return f.numel() == 1 ? f.expand({C}).contiguous() : f.contiguous();
  };
  const at::Tensor scale = per_channel(qw.params.scale), zp = per_channel(qw.params.zero_point);
  const float z = static_cast<float>(multipoint_zero_point(qw.scheme));
  std::vector<at::Tensor> level_rows;
  for (const auto& L : qw.extra) level_rows.push_back(channel_rows(L.codes, a));

  // Points per group, in level order then channel order (the order MultipointSum adds them).
  const int64_t Og = C / groups;
  std::vector<std::vector<std::pair<size_t, int64_t>>> points(static_cast<size_t>(groups));
  for (size_t m = 0; m < qw.extra.size(); ++m) {
    const at::Tensor used = qw.extra[m].used.to(at::kBool).contiguous();
    for (int64_t c = 0; c < C; ++c)
      if (used.data_ptr<bool>()[c]) points[static_cast<size_t>(c / Og)].push_back({m, c});
  }
  size_t Eg = 0;
  for (const auto& p : points) Eg = std::max(Eg, p.size());
  const int64_t per = Og + static_cast<int64_t>(Eg), Cn = groups * per;

  MultipointLayout out;
  out.dest.assign(static_cast<size_t>(Cn), -1);
  out.main.assign(static_cast<size_t>(Cn), false);
  at::Tensor nrows = at::full({Cn, K}, z, at::kFloat);
  at::Tensor nscale = at::ones({Cn}, at::kFloat), nzp = at::full({Cn}, z, at::kFloat);
  for (int64_t j = 0; j < groups; ++j) {
    const int64_t base = j * per;
    for (int64_t t = 0; t < Og; ++t) {
      const int64_t c = j * Og + t, p = base + t;
      nrows[p].copy_(rows[c]);
      nscale[p] = scale[c];
      nzp[p] = zp[c];
      out.dest[static_cast<size_t>(p)] = c;
      out.main[static_cast<size_t>(p)] = true;
    }
    int64_t k = 0;
    for (const auto& [m, c] : points[static_cast<size_t>(j)]) {
      const int64_t p = base + Og + k++;
      nrows[p].copy_(level_rows[m][c]);
      nscale[p] = qw.extra[m].scale[c];
      out.dest[static_cast<size_t>(p)] = c;
    }
  }
  std::vector<int64_t> shape = qw.codes.sizes().vec();
  shape[static_cast<size_t>(a)] = Cn;
  out.weight = qw;
  out.weight.extra.clear();
  out.weight.codes = from_channel_rows(nrows, shape, a);
  out.weight.scheme.granularity = Granularity::kPerChannel;
  out.weight.scheme.axis = a;
  out.weight.params.scale = nscale;
  out.weight.params.zero_point = nzp;
  return out;
}

void rewrite_multipoint_node(const QuantizedWeight& qw, const MultipointLayout& lay, const Graph& g,
                             pack::PackedModel& m) {
  auto it = std::find_if(m.nodes.begin(), m.nodes.end(), [&](const pack::Node& n) { return n.name == qw.node; });
  MIXQ_CHECK(it != m.nodes.end(), ErrorKind::kInvalidArgument, "multipoint layer '", qw.node, "' is not in the graph");
  pack::Node& n = *it;
  const bool has_bias = (n.op == "Conv" || n.op == "Gemm") && n.inputs.size() > 2 && !n.inputs[2].empty();
  if (has_bias) {
    auto b = g.initializers.find(n.inputs[2]);
    MIXQ_CHECK(b != g.initializers.end(), ErrorKind::kUnsupported, "multipoint layer '", qw.node,
               "': its bias is computed at run time; extra output channels need a stored one");
    const at::Tensor bias = b->second.to(at::kFloat).reshape({-1}).contiguous();
    pack::Tensor t;
    t.name = qw.node + "::multipoint_bias";
    t.dims = {static_cast<int64_t>(lay.dest.size())};
    t.f.assign(lay.dest.size(), 0.0f);
    const float* bv = bias.data_ptr<float>();
    for (size_t p = 0; p < lay.dest.size(); ++p)
      if (lay.main[p]) t.f[p] = bv[bias.numel() == 1 ? 0 : lay.dest[p]];
    n.inputs[2] = t.name;
    m.tensors.push_back(std::move(t));
  }
  pack::Node sum;
  sum.name = qw.node + "::multipoint_sum";
  sum.op = "MultipointSum";
  sum.inputs = {n.outputs.at(0) + "::multipoint"};
  sum.outputs = {n.outputs[0]};
  n.outputs[0] = sum.inputs[0];
  pack::Attr axis;
  axis.i = n.op == "MatMul" ? -1 : 1;
  pack::Attr dest;
  dest.type = pack::Attr::kInts;
  dest.ints = lay.dest;
  sum.attrs["axis"] = axis;
  sum.attrs["dest"] = dest;
  m.nodes.insert(it + 1, std::move(sum));
}

}  // namespace mixq
