#include "search/latency.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "mixq/error.h"

namespace mixq {

LatencyTable load_latency_table(const std::string& path) {
  std::ifstream f(path);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot open latency table '", path, "'");
  LatencyTable t;
  t.path = path;
  try {
    nlohmann::json j = nlohmann::json::parse(f);
    MIXQ_CHECK(j.value("mixq_latency_version", 0) == 1, ErrorKind::kInvalidArgument, path,
               ": not a mixq latency table (needs \"mixq_latency_version\": 1; see docs/hwspec.md)");
    auto add_row = [&](const std::string& layer, const nlohmann::json& row) {
      for (const auto& [bits, ms] : row.items()) {
        double v = ms.get<double>();
        MIXQ_CHECK(std::isfinite(v) && v >= 0, ErrorKind::kInvalidArgument, path, ": layer '", layer, "' bits ", bits,
                   ": latency must be a finite number >= 0");
        t.ms[layer][std::stoi(bits)] = v;
      }
    };
    const nlohmann::json& layers = j.at("layers");
    if (layers.is_array()) {  // `mixq profile -o` output: [{"name", "ms": {bits: ms}, ...}]
      for (const auto& L : layers) add_row(L.at("name").get<std::string>(), L.at("ms"));
    } else {
      for (const auto& [layer, row] : layers.items()) add_row(layer, row);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, path + ": malformed latency table: " + e.what());
  } catch (const std::invalid_argument&) {
    throw Error(ErrorKind::kInvalidArgument, path + ": a bits key is not a number");
  }
  return t;
}

}  // namespace mixq
