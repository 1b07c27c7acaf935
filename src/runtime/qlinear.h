// A linear map y[m][n] = sum_k x[m][k] * W[n][k] + bias[n] with the weight either quantized or
// float: the shared core of Conv (after im2col), Gemm and MatMul with a constant weight. No libtorch.
//
// Integer path (activation quantized to <= 8 bits, weight <= 8 bits per-tensor or per-channel on
// the output axis): x is quantized to codes a = clamp(nearbyint(x * (1 / sa)) + za, qmin, qmax) - qmin
// (uint8), the weight codes are held as integers w = q - off, and
//   y[m][n] = sa * sw[n] * (sum_k a*w - za'*sum_k w - zw'[n]*sum_k a + K*za'*zw'[n]) + bias[n]
// with za' = za - qmin, zw' = zw - off: the simulation's sa*(qa - za) x sw*(qw - zw) summed in
// exact int32 arithmetic, then one float rescale. The integer inside is sum (a - za')(q - zw),
// whatever `off` is, so the two weight forms below give bit-identical outputs:
//   - low-bit (weights < 8 bits, when the layer asks for it): the codes stay at their bits in
//     memory (kernels/gemv_lowbit.h) and are unpacked in registers; w = u = q - qmin, off = qmin.
//   - int8 (8-bit weights, or layers that keep it: see ops_linear.cpp, ops_conv.cpp): w8 = q - off, off = 128 for
//     asymmetric 8-bit, else 0, in gemm_u8s8's packed form.
// Float path (16-bit or no activation quantization, per-group weights, float weights): x is
// fake-quantized like the simulation when the layer's input is quantized; a quantized weight of
// <= 8 bits stays packed and is dequantized in registers by the float low-bit kernel when its
// scales run along the layer's k (per tensor, per output channel, per group of a multiple of 32 k
// in k order), else it is dequantized once at load into a float copy for sgemm.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/epilogue.h"
#include "kernels/gemm_epi.h"
#include "kernels/gemm_u8s8.h"
#include "kernels/gemv_lowbit.h"
#include "pack/bitpack.h"
#include "pack/mxq_format.h"

namespace mixq::rt {

class DnnlLinear;

struct QLinear {
  int64_t n = 0, k = 0;
  kernels::Isa isa = kernels::Isa::kRef;
  bool int_path = false;
  std::string why_float;  // why the integer path is not used ("" when it is)
  // activation quantizer (both paths)
  bool act_quant = false;
  float sa = 1;
  int32_t za = 0;              // za' (unsigned code domain)
  int32_t aqmin = 0, aqmax = 255;
  // integer path
  bool lowbit = false;           // low-bit kernel (L) instead of the int8 GEMM (B)
  kernels::PackedB B;
  std::vector<int8_t> w8;      // [n][k], the depthwise kernel's form (int8 form; others release it)
  std::vector<float> out_scale;  // sa * sw[n]
  std::vector<int32_t> zw;       // zw'[n]
  std::vector<int32_t> col_term; // -za' * sum_k w + K * za' * zw'[n]
  bool zw_nonzero = false, col_term_nonzero = false;  // derived from zw / col_term at init
  bool tile_epilogue = false;  // the epilogue runs in the GEMM's tiles (kernels/gemm_epi.h)
  // float path
  bool float_lowbit = false;     // float low-bit kernel (L with its scales) instead of sgemm on wt
  std::string why_not_lowbit;    // why a quantized weight is held expanded ("" when it is not)
  std::vector<float> wt;       // dequantized W^T, [k][n]
  std::vector<float> bias;     // [n] (zeros when none)
  // The float path on oneDNN's inner product (runtime/onednn.h) instead of sgemm on wt (then freed).
  std::shared_ptr<DnnlLinear> onednn;
  kernels::LowbitWeights L;    // the low-bit form (integer or float path)

  // The bytes this layer holds for its weight (codes, packed copies, scales, sums).
  int64_t weight_bytes() const;
  // Which kernel runs it: "lowbit4", "int8", "f32-lowbit3", "f32".
  std::string kernel_name() const;
  // Frees w8 (only the depthwise kernel reads it; the GEMMs read B).
  void release_w8() { std::vector<int8_t>().swap(w8); }
  // Bytes per row the integer path's activation codes are padded to (zeros beyond k).
  int64_t a_kp() const { return lowbit ? L.kp : kernels::gemm_kp(k); }

  // `rows_of_w`: the weight as n rows of k elements is obtained by `w_index(n, k)` -> flat index
  // into the stored tensor (the caller knows its layout). `act`: the input's quantizer or null.
  // `channel_base`: the weight channel (parameter index) of row 0 (grouped convolutions build one
  // QLinear per group). `bias` must be set (n values) before init, or is zero-filled.
  // `lowbit_int` / `lowbit_float`: whether the integer / float path may keep the weight low-bit.
  template <typename Index>
  void init(const pack::QWeight* qw, const std::vector<float>* fw, int64_t n_, int64_t k_, Index w_index,
            int64_t channel_base, int64_t weight_channel_axis, const pack::QAct* act, kernels::Isa isa,
            bool lowbit_int = false, bool lowbit_float = false);

  // Activation codes of x (numel values) into a (uint8), int path only.
  void quantize_act(const float* x, int64_t numel, uint8_t* a) const;
  // Fake-quantized copy of x (the float path's input); identity when the input is not quantized.
  void fake_quant_act(const float* x, int64_t numel, float* y) const;

  // The GEMM alone: sum_k a * w, without the zero-point terms (the epilogue adds them).
  void gemm(const uint8_t* A, int64_t lda, int64_t m, int32_t* C, int threads) const;
  // Whether the epilogue needs the rows' code sums (some weight zero point zw'[n] is not 0; set by
  // init).
  bool needs_rsum() const { return zw_nonzero; }
  // The fused epilogue's parameters for m rows of GEMM sums `acc` (row stride lda) of this layer:
  // col_term (skipped when all 0), zw * rsum (when needs_rsum(); rsum [m]), out_scale, bias.
  // y = out_scale * (acc + col_term - zw * rsum) + bias: kernels/epilogue.h.
  kernels::EpiRows epilogue_rows(const int32_t* acc, int64_t m, int64_t lda, const int32_t* rsum) const;
  // Lets the int8 GEMM run the epilogue in its tiles where the kernel has it (after init).
  void allow_tile_epilogue(bool allowed) {
    tile_epilogue = allowed && int_path && !lowbit && kernels::gemm_epi_supported(B);
  }
  // The GEMM and epilogue `e` (from epilogue_rows) in one pass into `out` (tile_epilogue only).
  void gemm_epilogue(const uint8_t* A, int64_t lda, int64_t m, const kernels::EpiRows& e, const kernels::EpiOut& out,
                     int threads) const {
    kernels::gemm_u8s8_epi(A, lda, m, B, e, out, threads);
  }
  // Moves the float path's weight (wt, bias) to oneDNN: only for a float-path layer whose weight is
  // held as a float copy (not float_lowbit).
  void use_onednn();
  // Float path on rows X [m][k] (already fake-quantized); same output addressing.
  void run_float(const float* X, int64_t m, float* y, int64_t ysm, int64_t ysn, int threads,
                 std::vector<float>& scratch) const;
};

// The weight's 8-bit integer offset (see above).
// The constant subtracted from a weight's codes to make the int8 operand (the zero-point terms
// absorb it): asymmetric 8-bit codes [0, 255] -> [-128, 127]; asymmetric 7-bit codes [0, 127] ->
// [-64, 63], so that on AVX2 they take the exact vpmaddubsw path (PackedB::narrow), as every
// narrower weight does.
inline int32_t weight_offset(const pack::QWeight& q) {
  return (!q.symmetric && q.bits >= 7 && q.bits <= 8) ? (1 << (q.bits - 1)) : 0;
}

// Parameter (scale / zero point) index of flat element `i` of q, as QWeight::dequantize.
int64_t param_index(const pack::QWeight& q, int64_t i);

// The codes u = q - qmin of the layer's n x k view.
template <typename Index>
std::vector<uint8_t> lowbit_codes(const pack::QWeight& qw, int64_t n, int64_t k, Index w_index) {
  std::vector<uint16_t> all(static_cast<size_t>(qw.numel()));
  pack::unpack_bits(qw.packed.data(), qw.numel(), qw.bits, all.data());
  std::vector<uint8_t> u(static_cast<size_t>(n * k));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < k; ++i) u[j * k + i] = static_cast<uint8_t>(all[w_index(j, i)]);
  return u;
}

// The float low-bit kernel's scales and zero points (u domain) as [n][groups], or why the weight's
// scales do not fit it.
template <typename Index>
std::string lowbit_float_params(const pack::QWeight& qw, int64_t n, int64_t k, Index w_index, int64_t channel_base,
                                int64_t weight_channel_axis, std::vector<float>* s, std::vector<int32_t>* z,
                                int64_t* group_size) {
  if (!kernels::lowbit_bits_supported(qw.bits)) return std::to_string(qw.bits) + "-bit weights";
  const int32_t qmin = static_cast<int32_t>(qw.qmin());
  if (qw.granularity != pack::Gran::kPerTensor && qw.axis != weight_channel_axis)
    return "scales not on the output-channel axis";
  if (qw.granularity != pack::Gran::kPerGroup) {
    *group_size = k;
    for (int64_t j = 0; j < n; ++j) {
      const size_t p = qw.granularity == pack::Gran::kPerTensor ? 0 : static_cast<size_t>(channel_base + j);
      s->push_back(qw.scales[p]);
      z->push_back(qw.zero_points[p] - qmin);
    }
    return "";
  }
  const int64_t gs = qw.group_size, G = qw.groups();
  const std::string why = kernels::lowbit_float_unsupported(gs, k);
  if (!why.empty()) return why;
  if ((k + gs - 1) / gs != G) return "the layer's k is not the weight's group axis";
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < k; ++i)
      if (param_index(qw, w_index(j, i)) != (channel_base + j) * G + i / gs)
        return "groups do not run along the layer's k order (a convolution reads taps first)";
  *group_size = gs;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t g = 0; g < G; ++g) {
      s->push_back(qw.scales[static_cast<size_t>((channel_base + j) * G + g)]);
      z->push_back(qw.zero_points[static_cast<size_t>((channel_base + j) * G + g)] - qmin);
    }
  return "";
}

template <typename Index>
void QLinear::init(const pack::QWeight* qw, const std::vector<float>* fw, int64_t n_, int64_t k_, Index w_index,
                   int64_t channel_base, int64_t weight_channel_axis, const pack::QAct* act, kernels::Isa isa,
                   bool lowbit_int, bool lowbit_float) {
  n = n_;
  k = k_;
  this->isa = isa;
  if (act) {
    act_quant = true;
    sa = act->scale;
    aqmin = static_cast<int32_t>(act->qmin());
    aqmax = static_cast<int32_t>(act->qmax());
    za = static_cast<int32_t>(act->zero_point) - aqmin;
  }
  if (bias.empty()) bias.assign(static_cast<size_t>(n), 0.0f);
  if (!qw) why_float = "float weight";
  else if (!act) why_float = "input activation not quantized";
  else if (act->bits > 8) why_float = std::to_string(act->bits) + "-bit activations";
  else if (qw->bits > 8) why_float = std::to_string(qw->bits) + "-bit weights";
  else if (qw->granularity == pack::Gran::kPerGroup) why_float = "per-group weight scales";
  else if (qw->granularity == pack::Gran::kPerChannel && qw->axis != weight_channel_axis)
    why_float = "per-channel scales not on the output-channel axis";
  int_path = why_float.empty();
  if (int_path) {
    int32_t off = 0;
    const std::vector<int32_t>* row_sums = nullptr;
    // (7-bit weights have no packed low-bit form: they take the int8 GEMM, narrow on AVX2.)
    lowbit = lowbit_int && qw->bits < 8 && kernels::lowbit_bits_supported(qw->bits);
    if (lowbit) {
      L = kernels::pack_lowbit(lowbit_codes(*qw, n, k, w_index).data(), n, k, qw->bits);
      off = static_cast<int32_t>(qw->qmin()) + L.code_offset;
      row_sums = &L.row_sums;
    } else {
      const std::vector<int32_t> q = qw->codes();
      off = weight_offset(*qw);
      w8.resize(static_cast<size_t>(n * k));
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < k; ++i) w8[j * k + i] = static_cast<int8_t>(q[w_index(j, i)] - off);
      B = kernels::pack_b(w8.data(), n, k, isa);
      row_sums = &B.row_sums;
    }
    out_scale.resize(n);
    zw.resize(n);
    col_term.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      const size_t p = qw->granularity == pack::Gran::kPerTensor ? 0 : static_cast<size_t>(channel_base + j);
      out_scale[j] = sa * qw->scales[p];
      zw[j] = qw->zero_points[p] - off;
      col_term[j] = -za * (*row_sums)[j] + static_cast<int32_t>(k) * za * zw[j];
      zw_nonzero = zw_nonzero || zw[j] != 0;
      col_term_nonzero = col_term_nonzero || col_term[j] != 0;
    }
    return;
  }
  if (qw && lowbit_float) {
    std::vector<float> s;
    std::vector<int32_t> z;
    int64_t gs = 0;
    why_not_lowbit = lowbit_float_params(*qw, n, k, w_index, channel_base, weight_channel_axis, &s, &z, &gs);
    if (why_not_lowbit.empty()) {
      float_lowbit = true;
      L = kernels::pack_lowbit(lowbit_codes(*qw, n, k, w_index).data(), n, k, qw->bits);
      kernels::set_lowbit_dequant(L, s.data(), z.data(), gs);
      return;
    }
  } else if (qw) {
    why_not_lowbit = "low-bit kernel not used for this layer kind";
  }
  const std::vector<float> deq = qw ? qw->dequantize() : *fw;  // (a per-group Conv re-dequantizes per group)
  wt.resize(static_cast<size_t>(n * k));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < k; ++i) wt[i * n + j] = deq[w_index(j, i)];
}

}  // namespace mixq::rt
