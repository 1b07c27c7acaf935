// Shared pieces of the mixq CLI: global options, the subcommand table, output helpers.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "api/checkpoint_files.h"
#include "api/job_options.h"

namespace mixq {
struct PreprocessOverride;
struct QuantizeJob;
struct QuantizeResult;
}  // namespace mixq

namespace mixq::cli {

// The size report of api/write_packed.h on the terminal (cmd_pack.cpp).
void print_pack_summary(const nlohmann::json& j);

// Options every subcommand has.
struct GlobalOptions {
  bool json = false;     // print exactly one JSON object on stdout
  int threads = 0;       // 0: libtorch's default (all cores)
  bool verbose = false;
  bool quiet = false;
};

// Adds --json/--threads/--verbose/--quiet to a subcommand.
void add_global_options(CLI::App& sub, GlobalOptions& g);
// Applies threads and log level; call first in every run function.
void apply_global_options(const GlobalOptions& g);
// Prints `j` as the single stdout JSON object, with the process's peak_rss_mb added.
void print_json(const nlohmann::json& j);

// The bundled fixture directory: --models, else $MIXQ_MODELS_DIR, else the source tree's models/.
std::string default_models_dir();

// One subcommand: `setup` declares its options on the CLI11 subcommand and returns the function
// that runs it (capturing the parsed options). Rows live in main.cpp. `safe_points`: the job polls
// for SIGINT / SIGTERM and exits 130 / 143 at a safe point (core/interrupt.h); the others keep the
// default action (Ctrl-C ends them at once: they write nothing, or only atomically).
using RunFn = std::function<int()>;
struct Command {
  const char* name;
  const char* help;
  RunFn (*setup)(CLI::App& sub);
  bool safe_points;
};

RunFn setup_info(CLI::App& sub);
RunFn setup_eval(CLI::App& sub);
RunFn setup_demo(CLI::App& sub);
RunFn setup_quantize(CLI::App& sub);
RunFn setup_pack(CLI::App& sub);
RunFn setup_run(CLI::App& sub);
RunFn setup_bench(CLI::App& sub);
RunFn setup_profile(CLI::App& sub);
RunFn setup_pareto(CLI::App& sub);
RunFn setup_plan(CLI::App& sub);


}  // namespace mixq::cli
