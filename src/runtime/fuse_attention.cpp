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

// in: Q, K, V, each possibly through a folded Transpose (`perm`: the operand is in.transpose(perm),
// read through strides). Shapes the kernel covers: Q [.., lq, d], K [.., d, lk], V [.., lk, dv], all
// rank 3 or 4 with leading dims equal or 1 (broadcast through a zero stride); the output [.., lq,
// dv], or with a folded output Transpose swapping heads and rows, [.., lq, heads, dv]. Anything else
// (other ranks, other broadcasts) runs the original ops, kept here for that.
class AttentionOp : public Op {
 public:
  float scale = 1.0f;
  bool divide = false;
  kernels::Isa isa = kernels::Isa::kRef;
  // The chain as loaded: every op but the one this replaced stays owned by the model's op list
  // (skipped there, so everything that walks the list still finds an op); `owned` is the replaced one.
  Op *mm1 = nullptr, *scale_op = nullptr, *softmax = nullptr, *mm2 = nullptr;
  Op* in_transpose[3] = {nullptr, nullptr, nullptr};
  std::vector<int64_t> perm[3];
  Op* out_transpose = nullptr;  // perm swapping the two dims before the last
  int64_t out_perm_rank = 0;    // its rank (3 or 4)
  std::unique_ptr<Op> owned;
  Tensor scale_const;
  bool const_first = false;  // the scale op reads (constant, scores)

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    Operand q, k, v;
    if (!operand(*in[0], perm[0], q) || !operand(*in[1], perm[1], k) || !operand(*in[2], perm[2], v) ||
        !fast(q, k, v))
      return unfused(in, out, ctx);
    const int64_t r = static_cast<int64_t>(q.shape.size());
    std::vector<int64_t> shape(r);
    for (int64_t d = 0; d < r - 2; ++d) shape[d] = std::max({q.shape[d], k.shape[d], v.shape[d]});
    shape[r - 2] = q.shape[r - 2];
    shape[r - 1] = v.shape[r - 1];
    kernels::AttnArgs a;
    a.batch = r == 4 ? shape[0] : 1;
    a.heads = shape[r - 3];
    a.lq = q.shape[r - 2];
    a.d = q.shape[r - 1];
    a.lk = k.shape[r - 1];
    a.dv = v.shape[r - 1];
    if (out_transpose) {  // [.., heads, lq, dv] written as [.., lq, heads, dv]
      std::swap(shape[r - 3], shape[r - 2]);
      a.o_sr = a.heads * a.dv;
      a.o_sh = a.dv;
      a.o_sb = a.lq * a.heads * a.dv;
    }
    Tensor y = output_floats(shape, ctx);
    a.q = q.view();
    a.k = k.view();
    a.v = v.view();
    a.o = y.f.data();
    a.scale = scale;
    a.divide = divide;
    last_macs = a.batch * a.heads * a.lq * a.lk * (a.d + a.dv);
    kernels::attention_f32(a, ctx.threads, isa);
    out[0] = std::move(y);
  }

 private:
  // An operand as the chain sees it: its shape after the folded Transpose and the strides that
  // read it from the tensor as stored (contiguous, so no copy is made).
  struct Operand {
    const float* p = nullptr;
    std::vector<int64_t> shape, stride;
    // A leading dim of 1 is broadcast (stride 0).
    kernels::AttnView view() const {
      const size_t r = shape.size();
      kernels::AttnView w;
      w.p = p;
      w.sc = stride[r - 1];
      w.sr = stride[r - 2];
      w.sh = shape[r - 3] == 1 ? 0 : stride[r - 3];
      w.sb = r == 4 && shape[0] != 1 ? stride[0] : 0;
      return w;
    }
  };
  static bool operand(const Tensor& t, const std::vector<int64_t>& perm, Operand& o) {
    if (t.dtype != ElemType::kFloat32 || t.nhwc || t.is_codes()) return false;
    const int64_t r = t.rank();
    std::vector<int64_t> cs(r, 1);
    for (int64_t d = r - 2; d >= 0; --d) cs[d] = cs[d + 1] * t.shape[d + 1];
    o.p = t.f.data();
    if (perm.empty()) {
      o.shape = t.shape;
      o.stride = cs;
      return true;
    }
    if (static_cast<int64_t>(perm.size()) != r) return false;
    std::vector<bool> seen(r, false);
    o.shape.resize(r);
    o.stride.resize(r);
    for (int64_t d = 0; d < r; ++d) {
      const int64_t s = perm[d];
      if (s < 0 || s >= r || seen[s]) return false;  // (the Transpose op reports it, unfused)
      seen[s] = true;
      o.shape[d] = t.shape[s];
      o.stride[d] = cs[s];
    }
    return true;
  }
  bool fast(const Operand& q, const Operand& k, const Operand& v) const {
    const size_t r = q.shape.size();
    if ((r != 3 && r != 4) || k.shape.size() != r || v.shape.size() != r) return false;
    for (size_t d = 0; d + 2 < r; ++d) {
      const int64_t n = std::max({q.shape[d], k.shape[d], v.shape[d]});
      for (const Operand* t : {&q, &k, &v})
        if (t->shape[d] != n && t->shape[d] != 1) return false;
    }
    if (out_transpose && out_perm_rank != static_cast<int64_t>(r)) return false;
    return k.shape[r - 2] == q.shape[r - 1] && v.shape[r - 2] == k.shape[r - 1] && k.shape[r - 1] > 0;
  }
  void unfused(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) {
    RunCtx c = ctx;
    c.donor = nullptr;
    std::vector<Tensor> t[3];
    const Tensor* x[3];
    for (int i = 0; i < 3; ++i) {
      x[i] = in[static_cast<size_t>(i)];
      if (!in_transpose[i]) continue;
      t[i].resize(1);
      in_transpose[i]->run({x[i]}, t[i], c);
      x[i] = &t[i][0];
    }
    std::vector<Tensor> s(1), p(1), o(1);
    mm1->run({x[0], x[1]}, s, c);
    if (scale_op) {
      std::vector<Tensor> u(1);
      scale_op->run(const_first ? std::vector<const Tensor*>{&scale_const, &s[0]}
                                : std::vector<const Tensor*>{&s[0], &scale_const}, u, c);
      s = std::move(u);
    }
    softmax->run({&s[0]}, p, c);
    if (!out_transpose) return mm2->run({&p[0], x[2]}, out, c);
    mm2->run({&p[0], x[2]}, o, c);
    out_transpose->run({&o[0]}, out, c);
  }
};

// perm as a Transpose node states it, or empty when absent (reverse: not folded).
std::vector<int64_t> node_perm(const pack::Node& n) {
  const pack::Attr* a = n.attr("perm");
  return a ? a->ints : std::vector<int64_t>{};
}
// Swaps the two dims before the last and keeps the others: attention's output to [.., lq, heads, dv].
bool swaps_heads_rows(const std::vector<int64_t>& p) {
  const int64_t r = static_cast<int64_t>(p.size());
  if (r != 3 && r != 4) return false;
  for (int64_t d = 0; d < r; ++d) {
    const int64_t want = d == r - 3 ? r - 2 : d == r - 2 ? r - 3 : d;
    if (p[d] != want) return false;
  }
  return true;
}

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
  std::vector<int> writer(slots.size(), -1);  // slot -> the op computing it
  for (size_t i = 0; i < ops.size(); ++i)
    for (int o : op_out[i])
      if (o >= 0) writer[static_cast<size_t>(o)] = static_cast<int>(i);
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
    op->mm2 = ops[mm2].get();
    std::vector<int> xs = {op_in[mm1][0], op_in[mm1][1], op_in[mm2][1]};
    std::vector<int> gone = {mm1, sm};
    if (sc >= 0) gone.push_back(sc);
    // Transposes feeding Q, K, V (read by nothing else) are folded in: the kernel reads through
    // strides, so the [batch, tokens, heads, dim] projections are never copied to [b, h, t, d].
    const int reader[3] = {mm1, mm1, mm2};
    for (int j = 0; j < 3; ++j) {
      const int tr = writer[static_cast<size_t>(xs[static_cast<size_t>(j)])];
      if (tr < 0 || skip[tr] || pm.nodes[static_cast<size_t>(tr)].op != "Transpose" || op_in[tr].size() != 1 ||
          op_in[tr][0] < 0 || g.only_reader(xs[static_cast<size_t>(j)], "MatMul") != reader[j])
        continue;
      std::vector<int64_t> p = node_perm(pm.nodes[static_cast<size_t>(tr)]);
      if (p.size() != 3 && p.size() != 4) continue;
      op->perm[j] = std::move(p);
      op->in_transpose[j] = ops[tr].get();
      xs[static_cast<size_t>(j)] = op_in[tr][0];
      gone.push_back(tr);
    }
    // A Transpose of the output swapping heads and rows: the kernel writes that layout directly.
    int last = mm2;
    const int otr = g.only_reader(g.out0(mm2), "Transpose");
    if (otr >= 0 && g.out0(otr) >= 0 && swaps_heads_rows(node_perm(pm.nodes[static_cast<size_t>(otr)]))) {
      op->out_perm_rank = static_cast<int64_t>(node_perm(pm.nodes[static_cast<size_t>(otr)]).size());
      op->out_transpose = ops[otr].get();
      gone.push_back(mm2);
      last = otr;
    }
    op->owned = std::move(ops[last]);
    if (last == otr) op->out_transpose = op->owned.get();
    else op->mm2 = op->owned.get();
    op->desc = "node '" + pm.nodes[static_cast<size_t>(last)].name + "' (attention fused from '" +
               pm.nodes[i0].name + "')";
    g.replace(gone, last, xs, std::move(op), ops);
    ++fused;
  }
  return fused;
}

}  // namespace mixq::rt
