#include "common.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <iostream>

#include "core/log.h"
#include "core/peak_rss.h"
#include "data/dataset.h"
#include "dist/dist.h"

#ifndef MIXQ_SOURCE_DIR
#define MIXQ_SOURCE_DIR "."
#endif

namespace mixq::cli {

void add_global_options(CLI::App& sub, GlobalOptions& g) {
  sub.add_flag("--json", g.json, "Print exactly one JSON object on stdout (logs stay on stderr)");
  sub.add_option("--threads", g.threads, "Intra-op threads (default: all cores; under mpirun, the cores over the ranks on the machine)")
      ->check(CLI::Range(1, 1024));
  sub.add_flag("-v,--verbose", g.verbose, "More detail on stderr");
  sub.add_flag("-q,--quiet", g.quiet, "No progress bars or info lines on stderr");
}

void apply_global_options(const GlobalOptions& g) {
  dist::set_user_threads(g.threads);
  if (g.threads > 0)
    at::set_num_threads(g.threads);
  else if (dist::size() > 1)
    at::set_num_threads(dist::default_threads());  // ranks on one machine share its cores
  log::set_level(g.quiet ? log::Level::kQuiet : g.verbose ? log::Level::kVerbose : log::Level::kInfo);
}

void print_json(const nlohmann::json& j) {
  nlohmann::json out = j;
  // Every result says how much memory its job took at most (the whole process: model, caches, libraries).
  if (out.is_object() && !out.contains("peak_rss_mb")) out["peak_rss_mb"] = peak_rss_bytes() / 1048576.0;
  std::cout << out.dump(2) << std::endl;
}

std::string default_models_dir() {
  const char* env = std::getenv("MIXQ_MODELS_DIR");
  return env && *env ? env : MIXQ_SOURCE_DIR "/models";
}

}  // namespace mixq::cli
