#include "quant/sparq_apply.h"

#include <ATen/ATen.h>

#include <array>

#include "mixq/error.h"
#include "quant/qdq.h"

namespace mixq {

namespace {

// bSPARQ as two 256-entry tables indexed by the magnitude: the kept value and the window's low
// bit. Built from bsparq_ref, so the vectorised path cannot drift from the reference.
struct Lut {
  at::Tensor value;  // float32 [256]
  at::Tensor low;    // int64 [256]
};

const Lut& lut_of(SparqWindows w) {
  static const std::array<Lut, 3> luts = [] {
    std::array<Lut, 3> t;
    for (SparqWindows win : {SparqWindows::k5opt, SparqWindows::k3opt, SparqWindows::k2opt}) {
      Lut& l = t[static_cast<size_t>(win)];
      l.value = at::empty({256}, at::kFloat);
      l.low = at::empty({256}, at::kLong);
      float* v = l.value.data_ptr<float>();
      int64_t* lo = l.low.data_ptr<int64_t>();
      for (int m = 0; m < 256; ++m) {
        int low = 0;
        v[m] = static_cast<float>(bsparq_ref(m, win, &low));
        lo[m] = low;
      }
    }
    return t;
  }();
  return luts[static_cast<size_t>(w)];
}

}  // namespace

at::Tensor sparq_fake_quant(const at::Tensor& x, float scale, const SparqScheme& s, int64_t axis, SparqStats* stats) {
  MIXQ_ASSERT(s.enabled, "sparq_fake_quant called with SPARQ off");
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  const int64_t rank = xf.dim();
  const int64_t ax = axis < 0 ? axis + rank : axis;
  MIXQ_CHECK(rank >= 1 && ax >= 0 && ax < rank, ErrorKind::kInvalidArgument, "SPARQ pairing axis ", axis,
             " is outside a tensor of rank ", rank);
  // x = s * d exactly for integers |d| <= 255, so x / s rounds back to d.
  const at::Tensor d = at::round(xf / scale);
  const at::Tensor m = d.abs();
  if (m.numel() > 0)
    MIXQ_CHECK(m.max().item<float>() <= 255.0f, ErrorKind::kInvalidArgument,
               "SPARQ needs 8-bit activation codes, but the tensor holds |q - z| = ", m.max().item<float>());
  const at::Tensor mi = m.to(at::kLong);
  const Lut& lut = lut_of(s.windows);
  const at::Tensor bm = at::take(lut.value, mi);
  at::Tensor y = at::where(d < 0, -bm, bm);

  int64_t outer = 1, len = xf.size(ax), inner = 1;
  for (int64_t i = 0; i < ax; ++i) outer *= xf.size(i);
  for (int64_t i = ax + 1; i < rank; ++i) inner *= xf.size(i);
  const int64_t half = (len + 1) / 2;
  at::Tensor keep8;  // [outer, 2 * half, inner]: the element's pair has a zero
  if (s.vsparq || stats) {
    at::Tensor z = (d == 0).to(at::kByte).reshape({outer, len, inner});
    if (len % 2) z = at::constant_pad_nd(z, {0, 0, 0, 1}, 1);  // the missing partner is a zero
    const at::Tensor zp = z.view({outer, half, 2, inner});
    const at::Tensor pair_zero = zp.select(2, 0).logical_or(zp.select(2, 1));  // [outer, half, inner]
    keep8 = pair_zero.unsqueeze(2).expand({outer, half, 2, inner}).reshape({outer, 2 * half, inner});
    if (stats) {
      SparqStats st;
      st.values = xf.numel();
      st.zeros = (m == 0).sum().item<int64_t>();
      st.pairs = outer * half * inner;
      st.pairs_8bit = s.vsparq ? pair_zero.sum().item<int64_t>() : 0;
      // Values that went through bSPARQ: nonzero and (with vSPARQ) not kept at 8 bits.
      at::Tensor through = m > 0;
      if (s.vsparq) through = through.logical_and(keep8.narrow(1, 0, len).reshape(xf.sizes()).logical_not());
      const at::Tensor lows = at::take(lut.low, mi.masked_select(through));
      const at::Tensor hist = at::bincount(lows, {}, kSparqPlacements);
      for (int i = 0; i < kSparqPlacements; ++i) st.window[static_cast<size_t>(i)] = hist[i].item<int64_t>();
      st.rounded = bm.ne(m).logical_and(through).sum().item<int64_t>();
      stats->add(st);
    }
  }
  if (s.vsparq) y = at::where(keep8.narrow(1, 0, len).reshape(xf.sizes()), d, y);
  return y * scale;
}

int64_t sparq_pair_axis(const Graph& g, const std::string& layer_node) {
  const Node* n = nullptr;
  for (const auto& node : g.nodes)
    if (node.name == layer_node) n = &node;
  MIXQ_CHECK(n != nullptr, ErrorKind::kInvalidArgument, "SPARQ: layer '", layer_node, "' is not a node of the graph");
  const std::string& op = n->op_type;
  if (op == "Conv") {
    // Depthwise: the weight's input-channel dim (per group) is 1.
    auto w = n->inputs.size() > 1 ? g.initializers.find(n->inputs[1]) : g.initializers.end();
    if (w != g.initializers.end() && w->second.dim() >= 2 && w->second.size(1) == 1) return -1;
    return 1;
  }
  if (op == "ConvTranspose") return 1;
  if (op == "Gemm") {
    const Attribute* ta = n->attr("transA");
    return ta && ta->i ? 0 : 1;
  }
  if (op == "MatMul") return g.is_initializer(n->inputs.at(0)) ? -2 : -1;
  throw Error(ErrorKind::kUnsupported, g.describe(*n) + ": SPARQ is defined for Conv, ConvTranspose, Gemm and "
                                                        "MatMul inputs; use --act-scheme uniform for this model");
}

SparqStats SparqCounters::total() const {
  SparqStats t;
  for (const auto& [name, s] : per_tensor) t.add(s);
  return t;
}

nlohmann::json sparq_json(const SparqCounters& c) {
  if (c.per_tensor.empty()) return nullptr;
  const SparqStats t = c.total();
  auto frac = [](int64_t a, int64_t b) { return b ? double(a) / double(b) : 0.0; };
  nlohmann::json windows = nlohmann::json::object();
  int64_t through = 0;
  for (int low = kSparqPlacements - 1; low >= 0; --low) through += t.window[static_cast<size_t>(low)];
  for (int low = kSparqPlacements - 1; low >= 0; --low)
    windows[sparq_window_name(low)] = frac(t.window[static_cast<size_t>(low)], through);
  nlohmann::json per = nlohmann::json::object();
  int64_t signed_tensors = 0;
  for (const auto& [name, s] : c.per_tensor) {
    per[name] = {{"frac_pairs_8bit", s.frac_pairs_8bit()}, {"frac_zeros", frac(s.zeros, s.values)},
                 {"signed", s.signed_tensors > 0}};
    signed_tensors += s.signed_tensors > 0;
  }
  return {{"tensors", c.per_tensor.size()},
          {"values", t.values},
          {"zeros", t.zeros},
          {"frac_zeros", frac(t.zeros, t.values)},
          {"pairs", t.pairs},
          {"pairs_8bit", t.pairs_8bit},
          {"frac_pairs_8bit", t.frac_pairs_8bit()},
          {"windowed", through},
          {"rounded", t.rounded},
          {"frac_rounded", frac(t.rounded, t.values)},
          {"window_share", windows},
          {"signed_tensors", signed_tensors},
          {"per_tensor", per}};
}

std::unique_ptr<Executor> simulation_executor(const QuantizedModel& qm, SparqCounters* counters) {
  std::map<std::string, std::string> dq_names;
  auto ex = std::make_unique<Executor>(qdq_graph(qm, &dq_names));
  for (const auto& qa : qm.activations) {
    if (!qa.sparq.enabled) continue;
    auto it = dq_names.find(qa.tensor);
    if (it == dq_names.end()) continue;  // no quantized layer reads it
    MIXQ_CHECK(qa.scheme.bits == 8, ErrorKind::kInvalidArgument, "activation '", qa.tensor, "': SPARQ works on 8-bit ",
               "codes, but its scheme has ", qa.scheme.bits, " bits");
    const float scale = qa.params.scale.to(at::kFloat).reshape({-1})[0].item<float>();
    const float zp = qa.params.zero_point.to(at::kFloat).reshape({-1})[0].item<float>();
    const bool is_signed = qa.scheme.symmetric || zp != 0.0f;
    SparqStats* st = counters ? &counters->per_tensor[qa.tensor] : nullptr;
    const SparqScheme s = qa.sparq;
    const int64_t axis = qa.sparq_axis;
    ex->add_hook(it->second, [=](const std::string&, at::Tensor& v) {
      v = sparq_fake_quant(v, scale, s, axis, st);
      if (st && is_signed) ++st->signed_tensors;
    });
  }
  return ex;
}

void check_no_sparq(const QuantizedModel& qm, const std::string& target) {
  for (const auto& qa : qm.activations)
    MIXQ_CHECK(!qa.sparq.enabled, ErrorKind::kUnsupported, target, " cannot express the SPARQ activation scheme (",
               act_scheme_name(qa.sparq), " on '", qa.tensor, "'): its windows are chosen per value at run time, ",
               "and writing it anyway would run plain 8-bit activations. SPARQ is simulated only (mixq quantize ",
               "--act-scheme ... --eval); quantize with --act-scheme uniform to export or pack");
}

}  // namespace mixq
