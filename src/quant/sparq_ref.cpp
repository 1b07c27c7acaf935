#include "quant/sparq_ref.h"

#include <cstdlib>
#include <vector>

#include "mixq/error.h"

namespace mixq {

namespace {

// One row per window set: its name and the allowed window low bits, ascending (the choice takes
// the first that reaches the leading one; 4 is always last, so every 8-bit value has a window).
struct WindowsRow {
  SparqWindows w;
  const char* name;
  std::vector<int> lows;
};
const std::vector<WindowsRow>& windows_table() {
  static const std::vector<WindowsRow> t = {
      {SparqWindows::k5opt, "5opt", {0, 1, 2, 3, 4}},
      {SparqWindows::k3opt, "3opt", {0, 2, 4}},
      {SparqWindows::k2opt, "2opt", {0, 4}},
  };
  return t;
}

const WindowsRow& row_of(SparqWindows w) {
  for (const auto& r : windows_table())
    if (r.w == w) return r;
  MIXQ_ASSERT(false, "SPARQ window set ", static_cast<int>(w), " missing from its table");
  return windows_table().front();
}

int leading_one(int m) {
  int lead = -1;
  while (m >> (lead + 1)) ++lead;
  return lead;
}

}  // namespace

const char* sparq_windows_name(SparqWindows w) { return row_of(w).name; }

const char* sparq_window_name(int low) {
  static const char* names[kSparqPlacements] = {"[3:0]", "[4:1]", "[5:2]", "[6:3]", "[7:4]"};
  MIXQ_ASSERT(low >= 0 && low < kSparqPlacements, "SPARQ window low bit ", low);
  return names[low];
}

std::string act_scheme_name(const SparqScheme& s) {
  if (!s.enabled) return "uniform";
  return std::string("sparq:") + sparq_windows_name(s.windows) + (s.vsparq ? ",v" : "");
}

SparqScheme parse_act_scheme(const std::string& s) {
  SparqScheme r;
  if (s == "uniform") return r;
  for (const auto& row : windows_table())
    for (bool v : {false, true}) {
      r = SparqScheme{true, row.w, v};
      if (s == act_scheme_name(r)) return r;
    }
  throw Error(ErrorKind::kInvalidArgument,
              "unknown activation scheme '" + s +
                  "'; use uniform or sparq:5opt|3opt|2opt with an optional ',v' for vSPARQ (e.g. sparq:3opt,v)");
}

int bsparq_ref(int m, SparqWindows w, int* low_out) {
  MIXQ_ASSERT(m >= 0 && m <= 255, "bSPARQ input ", m, " is not an 8-bit magnitude");
  const int lead = leading_one(m);
  int low = 4;
  for (int l : row_of(w).lows)
    if (l + 3 >= lead) {
      low = l;
      break;
    }
  if (low_out) *low_out = low;
  if (low == 0) return m;
  int v = m >> low;
  const int rem = m & ((1 << low) - 1), half = 1 << (low - 1);
  if (rem > half || (rem == half && (v & 1))) ++v;  // round half to even
  if (v > 15) v = 15;                                // saturate inside the window
  return v << low;
}

void SparqStats::add(const SparqStats& o) {
  values += o.values;
  zeros += o.zeros;
  pairs += o.pairs;
  pairs_8bit += o.pairs_8bit;
  rounded += o.rounded;
  for (int i = 0; i < kSparqPlacements; ++i) window[static_cast<size_t>(i)] += o.window[static_cast<size_t>(i)];
  signed_tensors += o.signed_tensors;
}

void sparq_ref(const int32_t* d, int64_t outer, int64_t len, int64_t inner, const SparqScheme& s, int32_t* out,
               SparqStats* stats) {
  MIXQ_ASSERT(s.enabled, "sparq_ref called with SPARQ off");
  SparqStats st;
  const int64_t n = outer * len * inner;
  for (int64_t i = 0; i < n; ++i)
    MIXQ_CHECK(std::abs(d[i]) <= 255, ErrorKind::kInvalidArgument, "SPARQ input ", d[i], " at element ", i,
               " is not an 8-bit activation code (|q - z| <= 255)");
  st.values = n;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j0 = 0; j0 < len; j0 += 2)
      for (int64_t k = 0; k < inner; ++k) {
        const int64_t a = (o * len + j0) * inner + k;
        const bool has_b = j0 + 1 < len;
        const int64_t b = a + inner;
        const int32_t da = d[a], db = has_b ? d[b] : 0;
        ++st.pairs;
        const bool pair_has_zero = da == 0 || db == 0;
        st.zeros += (da == 0) + (has_b && db == 0);
        if (pair_has_zero) ++st.pairs_8bit;
        const bool keep8 = s.vsparq && pair_has_zero;
        for (int e = 0; e < (has_b ? 2 : 1); ++e) {
          const int64_t idx = e ? b : a;
          const int32_t x = d[idx];
          int32_t y = x;
          if (!keep8 && x != 0) {
            int low = 0;
            const int m = bsparq_ref(std::abs(x), s.windows, &low);
            ++st.window[static_cast<size_t>(low)];
            st.rounded += m != std::abs(x);
            y = x < 0 ? -m : m;
          }
          out[idx] = y;
        }
      }
  if (!s.vsparq) st.pairs_8bit = 0;
  if (stats) stats->add(st);
}

}  // namespace mixq
