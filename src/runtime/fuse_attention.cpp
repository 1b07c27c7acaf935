// Load-time fusion of scaled-dot-product attention (fuse_chains.h): MatMul(Q, K) [-> Mul|Div by a
// constant scalar] -> Softmax(last axis) -> MatMul(., V) becomes one op on kernels::attention_f32.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/attention.h"
#include "mixq/error.h"
#include "runtime/chain_graph.h"
#include "runtime/fuse_chains.h"

namespace mixq::rt {

namespace {

// in: Q, K, V. Shapes the kernel covers: Q [.., lq, d], K [.., d, lk], V [.., lk, dv], all rank 3
// or 4 with leading dims equal or 1 (broadcast through a zero stride). Anything else (other ranks,
// other broadcasts) runs the four original ops, kept here for that.
class AttentionOp : public Op {
 public:
  float scale = 1.0f;
  bool divide = false;
  kernels::Isa isa = kernels::Isa::kRef;
  // The chain as loaded: the first three stay owned by the model's op list (skipped there, so
  // everything that walks the list still finds an op), the last one is replaced by this op.
  Op *mm1 = nullptr, *scale_op = nullptr, *softmax = nullptr;
  std::unique_ptr<Op> mm2;
  Tensor scale_const;
  bool const_first = false;  // the scale op reads (constant, scores)

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor &q = *in[0], &k = *in[1], &v = *in[2];
    if (!fast(q, k, v)) return unfused(in, out, ctx);
    const int64_t r = q.rank();
    std::vector<int64_t> shape(r);
    for (int64_t d = 0; d < r - 2; ++d) shape[d] = std::max({q.shape[d], k.shape[d], v.shape[d]});
    shape[r - 2] = q.shape[r - 2];
    shape[r - 1] = v.shape[r - 1];
    Tensor y = output_floats(shape, ctx);
    kernels::AttnArgs a;
    a.batch = r == 4 ? shape[0] : 1;
    a.heads = shape[r - 3];
    a.lq = q.shape[r - 2];
    a.d = q.shape[r - 1];
    a.lk = k.shape[r - 1];
    a.dv = v.shape[r - 1];
    a.q = view(q);
    a.k = view(k);
    a.v = view(v);
    a.o = y.f.data();
    a.scale = scale;
    a.divide = divide;
    last_macs = a.batch * a.heads * a.lq * a.lk * (a.d + a.dv);
    kernels::attention_f32(a, ctx.threads, isa);
    out[0] = std::move(y);
  }

 private:
  static bool fast(const Tensor& q, const Tensor& k, const Tensor& v) {
    const int64_t r = q.rank();
    for (const Tensor* t : {&q, &k, &v})
      if (t->dtype != ElemType::kFloat32 || t->nhwc || t->is_codes() || t->rank() != r) return false;
    if (r != 3 && r != 4) return false;
    for (int64_t d = 0; d < r - 2; ++d) {
      const int64_t n = std::max({q.shape[d], k.shape[d], v.shape[d]});
      for (const Tensor* t : {&q, &k, &v})
        if (t->shape[d] != n && t->shape[d] != 1) return false;
    }
    return k.shape[r - 2] == q.shape[r - 1] && v.shape[r - 2] == k.shape[r - 1] && k.shape[r - 1] > 0;
  }
  // A contiguous tensor as an attention operand; a leading dim of 1 is broadcast (stride 0).
  static kernels::AttnView view(const Tensor& t) {
    const int64_t r = t.rank();
    kernels::AttnView w;
    w.p = t.f.data();
    w.sc = 1;
    w.sr = t.shape[r - 1];
    const int64_t mat = t.shape[r - 2] * t.shape[r - 1];
    w.sh = t.shape[r - 3] == 1 ? 0 : mat;
    w.sb = r == 4 && t.shape[0] != 1 ? t.shape[1] * mat : 0;
    return w;
  }
  void unfused(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) {
    RunCtx c = ctx;
    c.donor = nullptr;
    std::vector<Tensor> s(1), p(1);
    mm1->run({in[0], in[1]}, s, c);
    if (scale_op) {
      std::vector<Tensor> t(1);
      scale_op->run(const_first ? std::vector<const Tensor*>{&scale_const, &s[0]}
                                : std::vector<const Tensor*>{&s[0], &scale_const}, t, c);
      s = std::move(t);
    }
    softmax->run({&s[0]}, p, c);
    mm2->run({&p[0], in[2]}, out, c);
  }
};

}  // namespace

int fuse_attention(const pack::PackedModel& pm, std::vector<std::unique_ptr<Op>>& ops,
                   std::vector<std::vector<int>>& op_in, std::vector<std::vector<int>>& op_out,
                   std::vector<bool>& skip, const std::vector<Tensor>& slots, const std::vector<bool>& is_const,
                   const std::vector<int>& output_slots, kernels::Isa isa) {
  ChainGraph g(pm, op_in, op_out, skip, slots, is_const, output_slots);
  auto plain_matmul = [&](int i) {
    return i >= 0 && !skip[i] && pm.nodes[static_cast<size_t>(i)].op == "MatMul" && op_in[i].size() == 2 &&
           op_out[i].size() == 1 && op_in[i][0] >= 0 && op_in[i][1] >= 0 && !is_const[op_in[i][0]] &&
           !is_const[op_in[i][1]];
  };
  int fused = 0;
  for (size_t i0 = 0; i0 < ops.size(); ++i0) {
    const int mm1 = static_cast<int>(i0);
    if (!plain_matmul(mm1)) continue;
    const int s = g.out0(mm1);
    int sc = g.only_reader(s, "Mul");
    if (sc < 0) sc = g.only_reader(s, "Div");
    float scale = 1.0f;
    bool divide = false, const_first = false;
    int scores = s;
    Tensor scale_const;
    if (sc >= 0) {
      const Tensor* c = g.const_other(sc, s);
      divide = pm.nodes[static_cast<size_t>(sc)].op == "Div";
      const_first = op_in[sc][0] != s;
      scale = ChainGraph::scalar(c);
      if (std::isnan(scale) || (divide && const_first) || g.out0(sc) < 0) continue;
      scale_const = *c;
      scores = g.out0(sc);
    }
    const int sm = g.only_reader(scores, "Softmax");
    if (sm < 0 || op_in[sm].size() != 1 || g.out0(sm) < 0) continue;
    const pack::Attr* ax = pm.nodes[static_cast<size_t>(sm)].attr("axis");
    if (ax && ax->i != -1) continue;  // (a positive last axis is left unfused: rank unknown here)
    const int mm2 = g.only_reader(g.out0(sm), "MatMul");
    if (!plain_matmul(mm2) || op_in[mm2][0] != g.out0(sm) || g.out0(mm2) < 0) continue;
    auto op = std::make_unique<AttentionOp>();
    op->scale = scale;
    op->divide = divide;
    op->isa = isa;
    op->const_first = const_first;
    op->scale_const = std::move(scale_const);
    op->mm1 = ops[mm1].get();
    if (sc >= 0) op->scale_op = ops[sc].get();
    op->softmax = ops[sm].get();
    op->mm2 = std::move(ops[mm2]);
    op->desc = "node '" + pm.nodes[static_cast<size_t>(mm2)].name + "' (attention fused from '" + pm.nodes[i0].name +
               "')";
    const std::vector<int> xs = {op_in[mm1][0], op_in[mm1][1], op_in[mm2][1]};
    if (sc >= 0) g.replace({mm1, sc, sm}, mm2, xs, std::move(op), ops);
    else g.replace({mm1, sm}, mm2, xs, std::move(op), ops);
    ++fused;
  }
  return fused;
}

}  // namespace mixq::rt
