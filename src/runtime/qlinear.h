// A linear map y[m][n] = sum_k x[m][k] * W[n][k] + bias[n] with the weight either quantized or
// float: the shared core of Conv (after im2col), Gemm and MatMul with a constant weight. No libtorch.
//
// Integer path (activation quantized to <= 8 bits, weight <= 8 bits per-tensor or per-channel on
// the output axis): x is quantized to codes a = clamp(nearbyint(x / sa) + za, qmin, qmax) - qmin
// (uint8), the weight codes are held as int8 w = q - off (off = 128 for asymmetric 8-bit, else 0),
// and
//   y[m][n] = sa * sw[n] * (sum_k a*w - za'*sum_k w - zw'[n]*sum_k a + K*za'*zw'[n]) + bias[n]
// with za' = za - qmin, zw' = zw - off: the simulation's sa*(qa - za) x sw*(qw - zw) summed in
// exact int32 arithmetic, then one float rescale.
// Float path (everything else: 16-bit activations, per-group weights, float weights): x is
// fake-quantized like the simulation when the layer's input is quantized, the weight dequantized
// once at load, and the product is a float GEMM.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/gemm_u8s8.h"
#include "pack/mxq_format.h"

namespace mixq::rt {

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
  kernels::PackedB B;
  std::vector<int8_t> w8;      // [n][k], kept for the depthwise kernel and tests
  std::vector<float> out_scale;  // sa * sw[n]
  std::vector<int32_t> zw;       // zw'[n]
  std::vector<int32_t> col_term; // -za' * sum_k w + K * za' * zw'[n]
  // float path
  std::vector<float> wt;       // dequantized W^T, [k][n]
  std::vector<float> bias;     // [n] (zeros when none)

  // `rows_of_w`: the weight as n rows of k elements is obtained by `w_index(n, k)` -> flat index
  // into the stored tensor (the caller knows its layout). `act`: the input's quantizer or null.
  // `channel_base`: the weight channel (parameter index) of row 0 (grouped convolutions build one
  // QLinear per group). `bias` must be set (n values) before init, or is zero-filled.
  template <typename Index>
  void init(const pack::QWeight* qw, const std::vector<float>* fw, int64_t n_, int64_t k_, Index w_index,
            int64_t channel_base, int64_t weight_channel_axis, const pack::QAct* act, kernels::Isa isa);

  // Activation codes of x (numel values) into a (uint8), int path only.
  void quantize_act(const float* x, int64_t numel, uint8_t* a) const;
  // Fake-quantized copy of x (the float path's input); identity when the input is not quantized.
  void fake_quant_act(const float* x, int64_t numel, float* y) const;

  // Integer path on rows of codes A [m][lda >= B.kp] (zero-padded) with row sums `rsum` [m];
  // writes y at y[mi * ysm + ni * ysn].
  void run_int(const uint8_t* A, int64_t lda, const int32_t* rsum, int64_t m, float* y, int64_t ysm, int64_t ysn,
               int threads, std::vector<int32_t>& scratch) const;
  // Float path on rows X [m][k] (already fake-quantized); same output addressing.
  void run_float(const float* X, int64_t m, float* y, int64_t ysm, int64_t ysn, int threads,
                 std::vector<float>& scratch) const;
};

// The weight's 8-bit integer offset (see above).
inline int32_t weight_offset(const pack::QWeight& q) { return (!q.symmetric && q.bits == 8) ? 128 : 0; }

template <typename Index>
void QLinear::init(const pack::QWeight* qw, const std::vector<float>* fw, int64_t n_, int64_t k_, Index w_index,
                   int64_t channel_base, int64_t weight_channel_axis, const pack::QAct* act, kernels::Isa isa) {
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
    const std::vector<int32_t> q = qw->codes();
    const int32_t off = weight_offset(*qw);
    w8.resize(static_cast<size_t>(n * k));
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < k; ++i) w8[j * k + i] = static_cast<int8_t>(q[w_index(j, i)] - off);
    B = kernels::pack_b(w8.data(), n, k, isa);
    out_scale.resize(n);
    zw.resize(n);
    col_term.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      const size_t p = qw->granularity == pack::Gran::kPerTensor ? 0 : static_cast<size_t>(channel_base + j);
      out_scale[j] = sa * qw->scales[p];
      zw[j] = qw->zero_points[p] - off;
      col_term[j] = -za * B.row_sums[j] + static_cast<int32_t>(k) * za * zw[j];
    }
    return;
  }
  const std::vector<float> deq = qw ? qw->dequantize() : *fw;  // (a per-group Conv re-dequantizes per group)
  wt.resize(static_cast<size_t>(n * k));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < k; ++i) wt[i * n + j] = deq[w_index(j, i)];
}

}  // namespace mixq::rt
