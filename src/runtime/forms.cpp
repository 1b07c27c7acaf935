#include "runtime/forms.h"

#include <set>

#include "mixq/error.h"

namespace mixq::rt {

namespace {

struct Reader {
  int op;
  size_t idx;
};

std::vector<std::vector<Reader>> readers_of(const std::vector<std::vector<int>>& op_in, size_t n_slots) {
  std::vector<std::vector<Reader>> r(n_slots);
  for (size_t i = 0; i < op_in.size(); ++i)
    for (size_t k = 0; k < op_in[i].size(); ++k)
      if (op_in[i][k] >= 0) r[static_cast<size_t>(op_in[i][k])].push_back({static_cast<int>(i), k});
  return r;
}

bool same_quant(const kernels::OutQuant& a, const kernels::OutQuant& b) {
  return a.scale == b.scale && a.zq == b.zq && a.lo == b.lo && a.hi == b.hi;
}

}  // namespace

FormStats plan_forms(std::vector<std::unique_ptr<Op>>& ops, std::vector<std::vector<int>>& op_in,
                     std::vector<std::vector<int>>& op_out, std::vector<bool>& skip,
                     const std::vector<int>& output_slots, size_t n_slots) {
  FormStats st;
  const std::set<int> outputs(output_slots.begin(), output_slots.end());
  skip.assign(ops.size(), false);
  auto readers = readers_of(op_in, n_slots);
  // Op i's output read only by a Relu/Clip with constant bounds (not a graph output): when
  // `take(clamp)` accepts it, op i writes the Relu/Clip's output and the Relu/Clip is skipped.
  auto absorb_act = [&](size_t i, auto take) {
    if (skip[i] || op_out[i].size() != 1 || op_out[i][0] < 0) return false;
    const int s = op_out[i][0];
    if (outputs.count(s) || readers[static_cast<size_t>(s)].size() != 1) return false;
    const Reader r = readers[static_cast<size_t>(s)][0];
    kernels::ActClamp act;
    if (r.idx != 0 || op_out[r.op].size() != 1 || op_out[r.op][0] < 0 || !ops[r.op]->act_clamp(&act)) return false;
    if (!take(act)) return false;
    op_out[i][0] = op_out[r.op][0];
    op_in[r.op].clear();
    op_out[r.op].clear();
    skip[r.op] = true;
    ++st.fused_acts;
    return true;
  };
  // 1. Activation fusion.
  for (size_t i = 0; i < ops.size(); ++i) absorb_act(i, [&](kernels::ActClamp a) { return ops[i]->fuse_act(a); });
  // 1b. A residual Add reading an integer layer's output (as its only reader) and a value computed
  // before that layer is fused into the layer's epilogue (the other operand becomes the layer's
  // extra input), and so is a Relu/Clip after the Add.
  for (size_t i = 0; i < ops.size(); ++i) {
    readers = readers_of(op_in, n_slots);
    if (skip[i] || op_out[i].size() != 1 || op_out[i][0] < 0) continue;
    const int s = op_out[i][0];
    if (outputs.count(s) || readers[static_cast<size_t>(s)].size() != 1) continue;
    const Reader r = readers[static_cast<size_t>(s)][0];
    if (!ops[r.op]->is_add() || op_in[r.op].size() != 2 || op_out[r.op].size() != 1 || op_out[r.op][0] < 0) continue;
    const int o = op_in[r.op][1 - r.idx];
    if (o < 0 || o == s) continue;
    int producer = -1;
    for (size_t j = 0; j < i && producer < 0; ++j)
      for (int w : op_out[j])
        if (w == o) producer = static_cast<int>(j);
    if (producer < 0) continue;  // a graph input or stored tensor: left to the Add
    if (!ops[i]->fuse_add(op_in[i].size())) continue;
    op_in[i].push_back(o);
    op_out[i][0] = op_out[r.op][0];
    op_in[r.op].clear();
    op_out[r.op].clear();
    skip[r.op] = true;
    ++st.fused_adds;
    readers = readers_of(op_in, n_slots);
    absorb_act(i, [&](kernels::ActClamp a) { return ops[i]->fuse_post_act(a); });
  }
  // 2. Output forms.
  readers = readers_of(op_in, n_slots);
  for (size_t i = 0; i < ops.size(); ++i) {
    if (skip[i] || op_out[i].empty() || op_out[i][0] < 0) continue;
    const int s = op_out[i][0];
    const auto& rs = readers[static_cast<size_t>(s)];
    if (outputs.count(s) || rs.empty()) continue;
    // Codes when every reader takes them; codes and channels-last floats when every reader takes
    // one or the other (all codes readers sharing one quantizer); else channels-last floats when
    // every reader takes them.
    const kernels::OutQuant* q = nullptr;
    bool all_codes = true, all_either = true, nhwc = true, one_quant = true;
    for (const Reader& r : rs) {
      const kernels::OutQuant* qr = ops[r.op]->codes_quant(r.idx);
      const bool f = ops[r.op]->may_take_nhwc(r.idx);
      if (qr && !q) q = qr;
      if (qr && !same_quant(*qr, *q)) one_quant = false;
      all_codes = all_codes && qr;
      all_either = all_either && (qr || f);
      nhwc = nhwc && f;
    }
    if (q && one_quant && all_codes && ops[i]->set_output_form(Op::Form::kCodes, q)) ++st.codes_outputs;
    else if (q && one_quant && all_either && ops[i]->set_output_form(Op::Form::kNhwcAndCodes, q)) ++st.dual_outputs;
    else if (nhwc && ops[i]->set_output_form(Op::Form::kNhwc, nullptr)) ++st.nhwc_outputs;
  }
  return st;
}

void to_nchw(Tensor& x) {
  MIXQ_CHECK(!x.is_codes(), ErrorKind::kRuntime, "internal: activation codes reached an op that cannot read them");
  if (x.codes) {  // both forms: the float one serves
    x.codes = false;
    std::vector<uint8_t>().swap(x.u8);
  }
  if (!x.nhwc) return;
  x.nhwc = false;
  const int64_t N = x.shape[0], C = x.shape[1], HW = x.shape[2] * x.shape[3];
  if (HW == 1 || C == 1) return;  // the same memory either way
  std::vector<float> y(x.f.size());
  for (int64_t b = 0; b < N; ++b) {
    const float* src = x.f.data() + b * HW * C;
    float* dst = y.data() + b * C * HW;
    constexpr int64_t kBlock = 64;  // pixel blocks: reads and writes stay in L1
    for (int64_t i0 = 0; i0 < HW; i0 += kBlock) {
      const int64_t i1 = std::min(HW, i0 + kBlock);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = i0; i < i1; ++i) dst[c * HW + i] = src[i * C + c];
    }
  }
  x.f.swap(y);
}

}  // namespace mixq::rt
