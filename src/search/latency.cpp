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
    for (const auto& [layer, row] : j.at("layers").items())
      for (const auto& [bits, ms] : row.items()) {
        double v = ms.get<double>();
        MIXQ_CHECK(std::isfinite(v) && v >= 0, ErrorKind::kInvalidArgument, path, ": layer '", layer, "' bits ", bits,
                   ": latency must be a finite number >= 0");
        t.ms[layer][std::stoi(bits)] = v;
      }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, path + ": malformed latency table: " + e.what());
  } catch (const std::invalid_argument&) {
    throw Error(ErrorKind::kInvalidArgument, path + ": a bits key is not a number");
  }
  return t;
}

}  // namespace mixq
