#include "common.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <iostream>

#include "core/log.h"
#include "data/dataset.h"

#ifndef MIXQ_SOURCE_DIR
#define MIXQ_SOURCE_DIR "."
#endif

namespace mixq::cli {

void add_data_options(CLI::App& sub, PreprocessOverride& pre, std::vector<std::string>* input_shapes) {
  sub.add_option("--scale", pre.scale, "Pixel scale for uint8 images (fmnist, uint8 arrays) (default: model metadata or 1/255)");
  sub.add_option_function<std::string>(
      "--mean", [&pre](const std::string& v) { pre.mean = parse_float_list(v, "--mean"); },
      "Input normalization mean for uint8 images: one value or one per channel, e.g. 0.485,0.456,0.406 "
      "(default: model metadata, else 0)");
  sub.add_option_function<std::string>(
      "--std", [&pre](const std::string& v) { pre.std = parse_float_list(v, "--std"); },
      "Input normalization std for uint8 images: one value or one per channel, e.g. 0.229,0.224,0.225 "
      "(default: model metadata, else 1)");
  if (input_shapes)
    sub.add_option("--input-shape", *input_shapes,
                   "Concrete shape of an input with dynamic axes, NAME:d0,d1,... (repeat per input; default: "
                   "the first sample of the data)");
}

void add_global_options(CLI::App& sub, GlobalOptions& g) {
  sub.add_flag("--json", g.json, "Print exactly one JSON object on stdout (logs stay on stderr)");
  sub.add_option("--threads", g.threads, "Intra-op threads (default: all cores)")
      ->check(CLI::Range(1, 1024));
  sub.add_flag("-v,--verbose", g.verbose, "More detail on stderr");
  sub.add_flag("-q,--quiet", g.quiet, "No progress bars or info lines on stderr");
}

void apply_global_options(const GlobalOptions& g) {
  if (g.threads > 0) at::set_num_threads(g.threads);
  log::set_level(g.quiet ? log::Level::kQuiet : g.verbose ? log::Level::kVerbose : log::Level::kInfo);
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

std::string default_models_dir() {
  const char* env = std::getenv("MIXQ_MODELS_DIR");
  return env && *env ? env : MIXQ_SOURCE_DIR "/models";
}

}  // namespace mixq::cli
