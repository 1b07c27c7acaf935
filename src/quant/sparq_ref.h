// SPARQ (seed 001; Shomron et al., "Post-Training Sparsity-Aware Quantization", NeurIPS 2021):
// 4-bit activation windows cut from 8-bit activation codes at run time. The scheme, its names and
// the scalar reference; libtorch-free so a runtime or kernel can include it. The vectorised
// fake-quant path (quant/sparq_apply.h) is tested bit for bit against sparq_ref().
//
// Input: per-tensor 8-bit activation codes q with zero point z; SPARQ works on d = q - z, the
// integer the MAC multiplies. The paper's setting is post-ReLU activations on an unsigned grid
// (z = 0, d in [0, 255]).
//
// bSPARQ of a magnitude m = |d| in [0, 255]: lead = index of m's highest set bit (-1 for m = 0).
//   The window is the lowest allowed placement [low+3 : low] with low + 3 >= lead:
//     5opt: low in {4, 3, 2, 1, 0}  ([7:4] [6:3] [5:2] [4:1] [3:0])
//     3opt: low in {4, 2, 0}        ([7:4] [5:2] [3:0])
//     2opt: low in {4, 0}           ([7:4] [3:0])
//   (so with 5opt the window starts at the leading one; 3opt/2opt take the next placement up,
//   whose top bits may be zero). The value kept is v << low with v = m >> low rounded by the
//   dropped bits m mod 2^low: round half to even; a carry out of the window (v = 16) saturates at
//   v = 15 instead of moving the window up (the window is chosen before rounding, as a hardware
//   leading-one detector does). low = 0 keeps m exactly (every m < 8 is exact).
// Signed inputs (z != 0, or a symmetric grid): the paper covers post-ReLU (unsigned) activations
//   only. mixq applies bSPARQ to the magnitude and keeps the sign (sign-magnitude, |d| <= 255
//   fits the 8-bit window logic) rather than refusing, so models with signed layer inputs (the
//   normalised image, GELU/LayerNorm outputs of a ViT) can still be measured; reports count such
//   tensors (SparqStats::signed_tensors) so results outside the paper's setting are visible.
// vSPARQ: the tensor is viewed as [outer, len, inner] with `len` the pairing axis (the consumer's
//   reduction axis, see sparq_pair_axis in quant/sparq_apply.h); elements 2i and 2i+1 along it
//   (same outer and inner index) form a pair. If either element of a pair is zero (d = 0), the
//   other keeps all 8 bits (its partner's 4-bit slot is free); otherwise both get bSPARQ. With an
//   odd len the last element has no partner: the hardware pads the dot product with a zero, so it
//   keeps 8 bits.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace mixq {

enum class SparqWindows { k5opt, k3opt, k2opt };

// An activation scheme on top of the 8-bit grid: plain ("uniform") or SPARQ.
struct SparqScheme {
  bool enabled = false;
  SparqWindows windows = SparqWindows::k5opt;
  bool vsparq = false;
  bool operator==(const SparqScheme& o) const {
    return enabled == o.enabled && (!enabled || (windows == o.windows && vsparq == o.vsparq));
  }
  bool operator!=(const SparqScheme& o) const { return !(*this == o); }
};

// "uniform" or "sparq:5opt", "sparq:3opt,v", ... (the --act-scheme and plan spelling).
std::string act_scheme_name(const SparqScheme& s);
// Inverse of act_scheme_name; throws kInvalidArgument listing the valid spellings.
SparqScheme parse_act_scheme(const std::string& s);
const char* sparq_windows_name(SparqWindows w);  // "5opt", "3opt", "2opt"

// Window placements are named by their low bit (0..4): "[low+3:low]".
constexpr int kSparqPlacements = 5;
const char* sparq_window_name(int low);  // "[7:4]" for 4, ... "[3:0]" for 0

// bSPARQ of one magnitude m in [0, 255]; *low (if given) receives the window's low bit.
int bsparq_ref(int m, SparqWindows w, int* low = nullptr);

// What one or more SPARQ passes saw. Window counts cover the nonzero values that went through
// bSPARQ (a vSPARQ value that kept 8 bits, and every zero, are not counted there).
struct SparqStats {
  int64_t values = 0;          // elements seen
  int64_t zeros = 0;           // d == 0
  int64_t pairs = 0;           // vSPARQ pairs (an odd axis' last element counts as one pair)
  int64_t pairs_8bit = 0;      // pairs with a zero element: the other kept 8 bits (0 without vSPARQ)
  int64_t rounded = 0;         // values bSPARQ changed (dropped bits not all zero)
  std::array<int64_t, kSparqPlacements> window{};  // by window low bit
  int64_t signed_tensors = 0;  // tensor passes outside the paper's setting (d < 0 possible)
  void add(const SparqStats& o);
  double frac_pairs_8bit() const { return pairs ? double(pairs_8bit) / double(pairs) : 0.0; }
};

// SPARQ of d (integers, |d| <= 255) viewed as [outer, len, inner]; writes the kept integers to
// `out` (may alias d). Pairs along len only when s.vsparq. `stats` (optional) is added to.
// Throws kInvalidArgument when some |d| > 255 (not an 8-bit code).
void sparq_ref(const int32_t* d, int64_t outer, int64_t len, int64_t inner, const SparqScheme& s, int32_t* out,
               SparqStats* stats = nullptr);

}  // namespace mixq
