#include "kernels/gemv_lowbit.h"

#include <algorithm>
#include <cmath>

#include "mixq/error.h"

namespace mixq::kernels {

namespace {

struct Plane {
  int width, shift;  // bits [shift, shift + width) of u
};

// The bit planes of each width, low bits first (see the header).
std::vector<Plane> planes_of(int bits) {
  switch (bits) {
    case 2: return {{2, 0}};
    case 3: return {{2, 0}, {1, 2}};
    case 4: return {{4, 0}};
    case 5: return {{4, 0}, {1, 4}};
    case 6: return {{4, 0}, {2, 4}};
    case 8: return {{8, 0}};
  }
  MIXQ_ASSERT(false && "unsupported low-bit width");
  return {};
}

// Visits every (stored byte, bit field) of panels [p0, p1) with the (row, k) it holds, in storage
// order.
template <typename F>
void for_each_field(const LowbitWeights& W, int64_t p0, int64_t p1, F&& f) {
  const std::vector<Plane> planes = planes_of(W.bits);
  const int64_t nsb = W.super_blocks();
  int64_t byte = p0 * nsb * 64 * W.bits;
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t sb = 0; sb < nsb; ++sb)
      for (const Plane& pl : planes) {
        const int per = 8 / pl.width;
        for (int v = 0; v < pl.width; ++v)
          for (int e = 0; e < 64; ++e, ++byte)
            for (int fi = 0; fi < per; ++fi) {
              const int64_t j = v * per + fi, row = p * kLowbitPanel + e / 4, kk = sb * kLowbitSuper + 4 * j + e % 4;
              f(byte, fi * pl.width, pl, row, kk);
            }
      }
}

}  // namespace

int64_t LowbitWeights::bytes() const {
  return static_cast<int64_t>(data.size() + row_sums.size() * 4 + (scale_p.size() + zero_p.size()) * 4);
}

LowbitWeights pack_lowbit(const uint8_t* u, int64_t n, int64_t k, int bits) {
  MIXQ_ASSERT(lowbit_bits_supported(bits));
  LowbitWeights W;
  W.bits = bits;
  W.n = n;
  W.k = k;
  W.kp = lowbit_kp(k);
  W.code_offset = bits == 8 ? 128 : 0;
  W.data.assign(static_cast<size_t>(W.panels() * W.super_blocks() * 64 * bits), 0);
  W.row_sums.assign(static_cast<size_t>(n), 0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < k; ++i) {
      MIXQ_ASSERT(u[j * k + i] < (1u << bits));
      W.row_sums[j] += int32_t(u[j * k + i]) - W.code_offset;
    }
  const uint32_t flip = bits == 8 ? 0x80 : 0;  // 8 bits: store the int8 u - 128
  for_each_field(W, 0, W.panels(), [&](int64_t byte, int at, const Plane& pl, int64_t row, int64_t kk) {
    const uint32_t val = ((row < n && kk < k) ? u[row * k + kk] : 0u) ^ flip;
    W.data[byte] |= static_cast<uint8_t>(((val >> pl.shift) & ((1u << pl.width) - 1)) << at);
  });
  return W;
}

namespace {

// Rows [16 p0, min(n, 16 p1)) of the codes into u (row 16 p0 first).
void unpack_panels(const LowbitWeights& W, int64_t p0, int64_t p1, uint8_t* u) {
  const int64_t r0 = p0 * kLowbitPanel, rows = std::min(W.n, p1 * kLowbitPanel) - r0;
  std::fill(u, u + rows * W.k, uint8_t(0));
  for_each_field(W, p0, p1, [&](int64_t byte, int at, const Plane& pl, int64_t row, int64_t kk) {
    if (row >= W.n || kk >= W.k) return;
    u[(row - r0) * W.k + kk] |=
        static_cast<uint8_t>(((uint32_t(W.data[byte]) >> at) & ((1u << pl.width) - 1)) << pl.shift);
  });
  if (W.bits == 8)
    for (int64_t i = 0; i < rows * W.k; ++i) u[i] ^= 0x80;
}

}  // namespace

void unpack_lowbit(const LowbitWeights& W, uint8_t* u) { unpack_panels(W, 0, W.panels(), u); }

std::string lowbit_float_unsupported(int64_t group_size, int64_t k) {
  if (group_size <= 0) return "group size " + std::to_string(group_size) + " is not positive";
  if (group_size >= k || group_size % kLowbitSuper == 0) return "";
  return "group size " + std::to_string(group_size) + " is not a multiple of " + std::to_string(kLowbitSuper);
}

void set_lowbit_dequant(LowbitWeights& W, const float* scale, const int32_t* zero, int64_t group_size) {
  MIXQ_ASSERT(lowbit_float_unsupported(group_size, W.k).empty());
  W.group_size = group_size >= W.k ? std::max(W.kp, kLowbitSuper) : group_size;  // a multiple of 32 from here
  W.groups = (W.k + W.group_size - 1) / W.group_size;
  if (W.groups == 0) W.groups = 1;
  const int64_t P = W.panels(), G = W.groups;
  W.scale_p.assign(static_cast<size_t>(P * G * kLowbitPanel), 0.0f);
  W.zero_p.assign(static_cast<size_t>(P * G * kLowbitPanel), 8388608.0f);
  const int64_t gk = (W.k + group_size - 1) / group_size;  // the caller's groups per row
  for (int64_t j = 0; j < W.n; ++j)
    for (int64_t g = 0; g < G && g < gk; ++g) {
      const size_t at = static_cast<size_t>(((j / kLowbitPanel) * G + g) * kLowbitPanel + j % kLowbitPanel);
      W.scale_p[at] = scale[j * gk + g];
      W.zero_p[at] = 8388608.0f + static_cast<float>(zero[j * gk + g]);
    }
}

void gemm_lowbit_u8_ref(const uint8_t* A, int64_t lda, int64_t m, const uint8_t* u, int64_t n, int64_t k, int bits,
                        int32_t* C, int64_t ldc) {
  const int32_t off = bits == 8 ? 128 : 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int32_t acc = 0;
      for (int64_t q = 0; q < k; ++q) acc += int32_t(A[i * lda + q]) * (int32_t(u[j * k + q]) - off);
      C[i * ldc + j] = acc;
    }
}

void gemm_lowbit_f32_ref(const float* X, int64_t ldx, int64_t m, const uint8_t* u, int64_t n, int64_t k,
                         const float* scale, const int32_t* zero, int64_t group_size, const float* bias, float* Y,
                         int64_t ldy) {
  const int64_t gs = std::max<int64_t>(1, std::min(group_size, std::max<int64_t>(k, 1)));
  const int64_t G = (k + gs - 1) / gs;
  const int64_t gk = (k + group_size - 1) / std::max<int64_t>(group_size, 1);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float y = 0.0f;
      for (int64_t g = 0; g < G; ++g) {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const float z = static_cast<float>(zero[j * gk + g]);
        for (int64_t q = g * gs; q < std::min(k, (g + 1) * gs); ++q)
          acc[q % 4] = std::fma(X[i * ldx + q], static_cast<float>(u[j * k + q]) - z, acc[q % 4]);
        y = std::fma(scale[j * gk + g], (acc[0] + acc[1]) + (acc[2] + acc[3]), y);
      }
      Y[i * ldy + j] = y + (bias ? bias[j] : 0.0f);
    }
}

namespace {

// The ref path on the packed form: one panel unpacked at a time, then the reference loops.
void u8_ref_panels(const uint8_t* A, int64_t lda, int64_t m, const LowbitWeights& W, int64_t p0, int64_t p1,
                   int32_t* C, int64_t ldc) {
  std::vector<uint8_t> u(static_cast<size_t>(kLowbitPanel * W.k));
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t r0 = p * kLowbitPanel, rows = std::min(kLowbitPanel, W.n - r0);
    unpack_panels(W, p, p + 1, u.data());
    gemm_lowbit_u8_ref(A, lda, m, u.data(), rows, W.k, W.bits, C + r0, ldc);
  }
}

void f32_ref_panels(const float* X, int64_t ldx, int64_t m, const LowbitWeights& W, const float* bias, int64_t p0,
                    int64_t p1, float* Y, int64_t ldy) {
  std::vector<uint8_t> u(static_cast<size_t>(kLowbitPanel * W.k));
  const int64_t G = W.groups;
  std::vector<float> s(static_cast<size_t>(kLowbitPanel * G));
  std::vector<int32_t> z(s.size());
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t r0 = p * kLowbitPanel, rows = std::min(kLowbitPanel, W.n - r0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < G; ++g) {
        const size_t at = static_cast<size_t>((p * G + g) * kLowbitPanel + r);
        s[r * G + g] = W.scale_p[at];
        z[r * G + g] = static_cast<int32_t>(W.zero_p[at] - 8388608.0f);
      }
    unpack_panels(W, p, p + 1, u.data());
    gemm_lowbit_f32_ref(X, ldx, m, u.data(), rows, W.k, s.data(), z.data(), W.group_size,
                        bias ? bias + r0 : nullptr, Y + r0, ldy);
  }
}

// Output panels split over threads: a GEMV has one row, so the weight (the bytes that matter) is
// what gets divided.
template <typename F>
void split_panels(int64_t panels, int threads, F&& f) {
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, panels / 4)));
  if (nt <= 1) {
    f(0, panels);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) f(panels * t / nt, panels * (t + 1) / nt);
}

}  // namespace

void gemm_lowbit_u8(const uint8_t* A, int64_t lda, int64_t m, const LowbitWeights& W, int32_t* C, int64_t ldc,
                    Isa isa, int threads) {
  MIXQ_ASSERT(lda >= W.kp && ldc >= W.n);
  split_panels(W.panels(), threads, [&](int64_t p0, int64_t p1) {
    switch (isa) {
      case Isa::kRef: u8_ref_panels(A, lda, m, W, p0, p1, C, ldc); break;
      case Isa::kAvx2: gemm_lowbit_u8_avx2(A, lda, m, W, p0, p1, C, ldc); break;
      case Isa::kAvx512: gemm_lowbit_u8_avx512(A, lda, m, W, p0, p1, C, ldc); break;
    }
  });
}

void gemm_lowbit_f32(const float* X, int64_t ldx, int64_t m, const LowbitWeights& W, const float* bias, float* Y,
                     int64_t ldy, Isa isa, int threads) {
  MIXQ_ASSERT(ldx >= W.k && ldy >= W.n && W.groups > 0);
  if (isa == Isa::kRef) {
    split_panels(W.panels(), threads,
                 [&](int64_t p0, int64_t p1) { f32_ref_panels(X, ldx, m, W, bias, p0, p1, Y, ldy); });
    return;
  }
  // The SIMD paths read whole super-blocks: rows with k % 32 != 0 are copied once, zero-padded
  // (x = 0 adds fma(0, w, acc) = acc, so the padding leaves every sum bit-identical).
  std::vector<float> padded;
  const float* Xp = X;
  int64_t ldp = ldx;
  if (ldx < W.kp || W.k != W.kp) {
    padded.assign(static_cast<size_t>(m * W.kp), 0.0f);
    for (int64_t i = 0; i < m; ++i) std::copy(X + i * ldx, X + i * ldx + W.k, padded.begin() + i * W.kp);
    Xp = padded.data();
    ldp = W.kp;
  }
  split_panels(W.panels(), threads, [&](int64_t p0, int64_t p1) {
    if (isa == Isa::kAvx2) gemm_lowbit_f32_avx2(Xp, ldp, m, W, bias, p0, p1, Y, ldy);
    else gemm_lowbit_f32_avx512(Xp, ldp, m, W, bias, p0, p1, Y, ldy);
  });
}

}  // namespace mixq::kernels
