#include "runtime/fuse_chains.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <set>
#include <string>

#include "kernels/gelu.h"
#include "mixq/error.h"
#include "runtime/chain_graph.h"
#include "runtime/row_reduce.h"

namespace mixq::rt {

namespace {

class LayerNormOp : public Op {
 public:
  std::vector<float> gamma, beta;  // [D]
  float eps = 0;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor& x = *in[0];
    const int64_t D = static_cast<int64_t>(gamma.size());
    RT_CHECK(x.dtype == ElemType::kFloat32 && !x.nhwc && !x.is_codes() && x.rank() >= 1 && x.shape.back() == D, this,
             "input ", shape_str(x.shape), " does not end in the ", D, " normalised features");
    Tensor y = output_floats(x.shape, ctx);
    const float fd = static_cast<float>(D);
    parallel_ranges(ctx.threads, D > 0 ? x.numel() / D : 0, 4 * D, 1, [&](int64_t r0, int64_t r1) {  // rows
      std::vector<float> d(static_cast<size_t>(D));
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x.f.data() + r * D;
        float* yr = y.f.data() + r * D;
        const float mean = row_sum8(xr, D) / fd;                           // ReduceMean
        for (int64_t j = 0; j < D; ++j) d[j] = xr[j] - mean;               // Sub
        for (int64_t j = 0; j < D; ++j) yr[j] = d[j] * d[j];               // Pow 2 (as BinaryOp: x * x)
        const float var = row_sum8(yr, D) / fd;                            // ReduceMean
        const float sd = std::sqrt(var + eps);                             // Add eps, Sqrt
        for (int64_t j = 0; j < D; ++j) yr[j] = d[j] / sd * gamma[j] + beta[j];  // Div, Mul, Add
      }
    });
    out[0] = std::move(y);
  }
};

class GeluOp : public Op {
 public:
  float c = 1;
  kernels::Isa isa = kernels::Isa::kRef;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor& x = *in[0];
    RT_CHECK(x.dtype == ElemType::kFloat32 && !x.nhwc && !x.is_codes(), this, "needs an NCHW float input");
    Tensor y = output_floats(x.shape, ctx);
    parallel_ranges(ctx.threads, x.numel(), 8, 64, [&](int64_t b, int64_t e) {  // (~8 vector ops per value)
      kernels::gelu_erf_f32(x.f.data() + b, y.f.data() + b, e - b, c, isa);
    });
    out[0] = std::move(y);
  }
};

}  // namespace

int fuse_layernorms(const pack::PackedModel& pm, std::vector<std::unique_ptr<Op>>& ops,
                    std::vector<std::vector<int>>& op_in, std::vector<std::vector<int>>& op_out,
                    std::vector<bool>& skip, const std::vector<Tensor>& slots, const std::vector<bool>& is_const,
                    const std::vector<int>& output_slots) {
  ChainGraph g(pm, op_in, op_out, skip, slots, is_const, output_slots);
  int fused = 0;
  for (size_t i0 = 0; i0 < ops.size(); ++i0) {
    const int i = static_cast<int>(i0);
    if (skip[i] || !g.last_axis_mean(i)) continue;
    const int x = op_in[i][0], m = g.out0(i);
    const int sub = g.only_reader(m, "Sub");
    if (sub < 0 || op_in[sub] != std::vector<int>{x, m}) continue;
    const int d = g.out0(sub);
    if (d < 0 || g.outputs.count(d) || g.readers[static_cast<size_t>(d)].size() != 2) continue;
    int pw = -1, dv = -1;
    for (int r : g.readers[static_cast<size_t>(d)]) {
      const std::string& op = pm.nodes[static_cast<size_t>(r)].op;
      if (op == "Pow") pw = r;
      if (op == "Div") dv = r;
    }
    if (pw < 0 || dv < 0 || op_in[pw].size() != 2 || op_in[pw][0] != d) continue;
    const Tensor* two = g.const_other(pw, d);
    if (!two || two->f.size() != 1 || two->f[0] != 2.0f) continue;
    const int var = g.only_reader(g.out0(pw), "ReduceMean");
    if (var < 0 || !g.last_axis_mean(var)) continue;
    const int add_eps = g.only_reader(g.out0(var), "Add");
    const Tensor* eps = add_eps < 0 ? nullptr : g.const_other(add_eps, g.out0(var));
    if (!eps || eps->f.size() != 1) continue;
    const int sq = g.only_reader(g.out0(add_eps), "Sqrt");
    if (sq < 0 || g.only_reader(g.out0(sq), "Div") != dv || op_in[dv] != std::vector<int>{d, g.out0(sq)}) continue;
    const int mul = g.only_reader(g.out0(dv), "Mul");
    const Tensor* gamma = mul < 0 ? nullptr : g.const_other(mul, g.out0(dv));
    if (!gamma || gamma->shape.size() != 1) continue;
    const int add_b = g.only_reader(g.out0(mul), "Add");
    const Tensor* beta = add_b < 0 ? nullptr : g.const_other(add_b, g.out0(mul));
    if (!beta || beta->f.size() != gamma->f.size() || g.out0(add_b) < 0) continue;
    auto op = std::make_unique<LayerNormOp>();
    op->gamma = gamma->f;
    op->beta = beta->f;
    op->eps = eps->f[0];
    op->desc = "node '" + pm.nodes[static_cast<size_t>(add_b)].name + "' (LayerNorm fused from '" +
               pm.nodes[i0].name + "')";
    g.replace({i, sub, pw, var, add_eps, sq, dv, mul}, add_b, x, std::move(op), ops);
    ++fused;
  }
  return fused;
}

int fuse_gelus(const pack::PackedModel& pm, std::vector<std::unique_ptr<Op>>& ops,
               std::vector<std::vector<int>>& op_in, std::vector<std::vector<int>>& op_out, std::vector<bool>& skip,
               const std::vector<Tensor>& slots, const std::vector<bool>& is_const,
               const std::vector<int>& output_slots, kernels::Isa isa) {
  ChainGraph g(pm, op_in, op_out, skip, slots, is_const, output_slots);
  int fused = 0;
  for (size_t i0 = 0; i0 < ops.size(); ++i0) {
    const int dv = static_cast<int>(i0);
    if (skip[dv] || pm.nodes[i0].op != "Div" || op_in[dv].size() != 2) continue;
    const int x = op_in[dv][0];
    const float c = ChainGraph::scalar(g.const_other(dv, x));
    if (x < 0 || op_in[dv][1] == x || std::isnan(c)) continue;  // x / c with c a constant scalar
    const int erf = g.only_reader(g.out0(dv), "Erf");
    const int add = erf < 0 ? -1 : g.only_reader(g.out0(erf), "Add");
    const float one = add < 0 ? NAN : ChainGraph::scalar(g.const_other(add, g.out0(erf)));
    if (one != 1.0f) continue;
    const int mul = g.only_reader(g.out0(add), "Mul");
    if (mul < 0 || op_in[mul].size() != 2) continue;
    const std::vector<int>& mi = op_in[mul];
    if (!((mi[0] == x && mi[1] == g.out0(add)) || (mi[1] == x && mi[0] == g.out0(add)))) continue;
    const int mul2 = g.only_reader(g.out0(mul), "Mul");
    const float half = mul2 < 0 ? NAN : ChainGraph::scalar(g.const_other(mul2, g.out0(mul)));
    if (half != 0.5f || g.out0(mul2) < 0) continue;  // (then `one` and `half` are exactly the kernel's)
    auto op = std::make_unique<GeluOp>();
    op->c = c;
    op->isa = isa;
    op->desc = "node '" + pm.nodes[static_cast<size_t>(mul2)].name + "' (GELU fused from '" + pm.nodes[i0].name + "')";
    g.replace({dv, erf, add, mul}, mul2, x, std::move(op), ops);
    ++fused;
  }
  return fused;
}

int fuse_linear_biases(const pack::PackedModel& pm, std::vector<std::unique_ptr<Op>>& ops,
                       std::vector<std::vector<int>>& op_in, std::vector<std::vector<int>>& op_out,
                       std::vector<bool>& skip, const std::vector<Tensor>& slots, const std::vector<bool>& is_const,
                       const std::vector<int>& output_slots) {
  ChainGraph g(pm, op_in, op_out, skip, slots, is_const, output_slots);
  int fused = 0;
  for (size_t i0 = 0; i0 < ops.size(); ++i0) {
    const int i = static_cast<int>(i0);
    const std::string& op = pm.nodes[i0].op;
    if (skip[i] || (op != "MatMul" && op != "Gemm")) continue;
    const int s = g.out0(i);
    const int add = g.only_reader(s, "Add");
    if (add < 0 || g.out0(add) < 0) continue;
    // Rank 1 only: a bias of more dims could broadcast the output to another shape.
    const Tensor* b = g.const_other(add, s);
    if (!b || b->rank() != 1 || !ops[i0]->fuse_bias(b->f)) continue;
    op_out[i][0] = g.out0(add);  // the layer writes the Add's output; the Add is skipped
    op_in[add].clear();
    op_out[add].clear();
    skip[add] = true;
    ++fused;
  }
  return fused;
}

int fuse_embedding_bags(const pack::PackedModel& pm, std::vector<std::unique_ptr<Op>>& ops,
                        std::vector<std::vector<int>>& op_in, std::vector<std::vector<int>>& op_out,
                        std::vector<bool>& skip, const std::vector<Tensor>& slots, const std::vector<bool>& is_const,
                        const std::vector<int>& output_slots) {
  ChainGraph g(pm, op_in, op_out, skip, slots, is_const, output_slots);
  int fused = 0;
  for (size_t i0 = 0; i0 < ops.size(); ++i0) {
    const int i = static_cast<int>(i0);
    if (skip[i] || pm.nodes[i0].op != "Gather" || op_in[i].size() != 2 || op_in[i][1] < 0) continue;
    int red = g.only_reader(g.out0(i), "ReduceSum");
    if (red < 0) red = g.only_reader(g.out0(i), "ReduceMean");
    if (red < 0 || g.out0(red) < 0 || op_in[red].empty() || op_in[red][0] != g.out0(i)) continue;
    const Tensor* axes = nullptr;
    if (op_in[red].size() > 1 && op_in[red][1] >= 0) {
      const int a = op_in[red][1];
      if (!is_const[static_cast<size_t>(a)]) continue;  // (axes computed at run time: not matched)
      axes = &slots[static_cast<size_t>(a)];
    }
    std::unique_ptr<Op> bag = make_embedding_bag(ops[i0].get(), ops[static_cast<size_t>(red)], axes);
    if (!bag) continue;
    g.replace({i}, red, std::vector<int>(op_in[i]), std::move(bag), ops);
    ++fused;
  }
  return fused;
}

}  // namespace mixq::rt
