#include "quant/qscheme.h"

#include <algorithm>
#include <array>
#include <utility>

#include "mixq/error.h"

namespace mixq {

namespace {

// One row per value: the names plans, the CLI and reports use.
constexpr std::array<std::pair<Granularity, const char*>, 3> kGranularityNames = {{
    {Granularity::kPerTensor, "per_tensor"},
    {Granularity::kPerChannel, "per_channel"},
    {Granularity::kPerGroup, "per_group"},
}};
constexpr std::array<std::pair<Rounding, const char*>, 4> kRoundingNames = {{
    {Rounding::kNearest, "nearest"},
    {Rounding::kFloor, "floor"},
    {Rounding::kCeil, "ceil"},
    {Rounding::kStochastic, "stochastic"},
}};

template <typename E, size_t N>
const char* name_of(const std::array<std::pair<E, const char*>, N>& table, E e) {
  for (const auto& [v, n] : table)
    if (v == e) return n;
  MIXQ_ASSERT(false, "enum value ", static_cast<int>(e), " missing from its name table");
  return "";
}

template <typename E, size_t N>
E parse_name(const std::array<std::pair<E, const char*>, N>& table, const std::string& s, const char* what) {
  std::string valid;
  for (const auto& [v, n] : table) {
    if (s == n) return v;
    valid += std::string(valid.empty() ? "" : ", ") + n;
  }
  throw Error(ErrorKind::kInvalidArgument, detail::concat("unknown ", what, " '", s, "'; use one of: ", valid));
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

const char* granularity_name(Granularity g) { return name_of(kGranularityNames, g); }
const char* rounding_name(Rounding r) { return name_of(kRoundingNames, r); }
Granularity parse_granularity(const std::string& s) { return parse_name(kGranularityNames, s, "granularity"); }
Rounding parse_rounding(const std::string& s) { return parse_name(kRoundingNames, s, "rounding"); }

std::string QScheme::str() const {
  std::string s = std::to_string(bits) + "-bit " + (symmetric ? "sym " : "asym ") + granularity_name(granularity);
  if (granularity == Granularity::kPerChannel) s += "(axis " + std::to_string(axis) + ")";
  if (granularity == Granularity::kPerGroup)
    s += "(axis " + std::to_string(axis) + ", " + std::to_string(group_size) + ")";
  return s + " " + rounding_name(rounding);
}

QLayout q_layout(const QScheme& scheme, const std::vector<int64_t>& shape) {
  MIXQ_CHECK(scheme.bits >= 2 && scheme.bits <= 16, ErrorKind::kInvalidArgument, "quantization scheme '",
             scheme.str(), "': ", scheme.bits, " bits is not supported; use 2..8 or 16");
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  QLayout L;
  if (scheme.granularity == Granularity::kPerTensor) {
    L.inner = L.k = numel;
    L.group_size = std::max<int64_t>(numel, 1);
    return L;
  }
  const int64_t rank = static_cast<int64_t>(shape.size());
  const int64_t axis = scheme.axis < 0 ? scheme.axis + rank : scheme.axis;
  MIXQ_CHECK(rank >= 1 && axis >= 0 && axis < rank, ErrorKind::kInvalidArgument, "quantization scheme '",
             scheme.str(), "' needs a channel axis, but the tensor of shape ", shape_str(shape),
             " has none at ", scheme.axis, "; use per_tensor or an axis in [", -rank, ", ", rank, ")");
  L.channels = shape[static_cast<size_t>(axis)];
  for (int64_t i = 0; i < axis; ++i) L.outer *= shape[static_cast<size_t>(i)];
  for (int64_t i = axis + 1; i < rank; ++i) L.inner *= shape[static_cast<size_t>(i)];
  L.k = L.outer * L.inner;
  L.group_size = std::max<int64_t>(L.k, 1);
  if (scheme.granularity == Granularity::kPerGroup) {
    MIXQ_CHECK(scheme.group_size >= 1, ErrorKind::kInvalidArgument, "quantization scheme '", scheme.str(),
               "': group size must be >= 1 (tensor of shape ", shape_str(shape), ", K = ", L.k, ")");
    L.group_size = scheme.group_size;
    L.groups = (L.k + L.group_size - 1) / L.group_size;
  }
  return L;
}

std::vector<int64_t> param_shape(const QScheme& scheme, const std::vector<int64_t>& shape) {
  QLayout L = q_layout(scheme, shape);
  switch (scheme.granularity) {
    case Granularity::kPerTensor:
      return {};
    case Granularity::kPerChannel: {
      std::vector<int64_t> s(shape.size(), 1);
      int64_t rank = static_cast<int64_t>(shape.size());
      s[static_cast<size_t>(scheme.axis < 0 ? scheme.axis + rank : scheme.axis)] = L.channels;
      return s;
    }
    case Granularity::kPerGroup:
      return {L.channels, L.groups};
  }
  MIXQ_ASSERT(false, "unknown granularity");
  return {};
}

}  // namespace mixq
