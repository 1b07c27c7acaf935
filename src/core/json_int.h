// Integers read from mixq's JSON files (plans, sensitivity tables, hardware specs).
//
// nlohmann's get<int>() converts whatever number is there: a float beyond the type's range (a
// plan with "bits": 8e71) is undefined behaviour (found by fuzzing), and an integer beyond it wraps
// silently ("bits": 4294967304 read as 8). json_int accepts integers, and floats with an integral
// value, inside T's range; anything else throws nlohmann's type_error (302), which every reader
// already turns into "<file>: malformed ...: <field>" errors.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace mixq {

template <typename T>
T json_int(const nlohmann::json& j, const std::string& field) {
  static_assert(std::is_integral_v<T> && std::is_signed_v<T>);
  constexpr auto lo = std::numeric_limits<T>::min();
  constexpr auto hi = std::numeric_limits<T>::max();
  if (j.is_number_unsigned()) {
    const uint64_t v = j.get<uint64_t>();
    if (v <= static_cast<uint64_t>(hi)) return static_cast<T>(v);
  } else if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v >= lo && v <= hi) return static_cast<T>(v);
  } else if (j.is_number_float()) {
    const double v = j.get<double>();
    // Compared as doubles before any cast: min() = -2^(N-1) and -min() = max() + 1 are exact.
    if (std::isfinite(v) && std::trunc(v) == v && v >= static_cast<double>(lo) && v < -static_cast<double>(lo))
      return static_cast<T>(v);
  }
  throw nlohmann::json::type_error::create(
      302, "'" + field + "' must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + j.dump(),
      nullptr);
}

// obj[key] as json_int, or `def` when obj has no such key.
template <typename T>
T json_int_or(const nlohmann::json& obj, const char* key, T def) {
  return obj.contains(key) ? json_int<T>(obj.at(key), key) : def;
}

// An array of integers (each as json_int<int>).
inline std::vector<int> json_ints(const nlohmann::json& j, const std::string& field) {
  if (!j.is_array())
    throw nlohmann::json::type_error::create(302, "'" + field + "' must be an array of integers, got " + j.dump(), nullptr);
  std::vector<int> v;
  v.reserve(j.size());
  for (const auto& x : j) v.push_back(json_int<int>(x, field));
  return v;
}

}  // namespace mixq
