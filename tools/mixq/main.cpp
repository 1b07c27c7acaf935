// mixq: mixed-precision post-training quantization of ONNX models. Thin CLI over the library:
// each subcommand is one row below and one cmd_*.cpp file.
#include <csignal>
#include <iostream>

#include "common.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/malloc_tuning.h"
#include "core/runtime_env.h"
#include "dist/dist.h"
#include "mixq/error.h"

namespace mixq::cli {
namespace {

const Command kCommands[] = {
    {"info", "List a model's quantizable layers (op, shape, params, MACs) and totals", setup_info, false},
    {"eval", "Top-1 accuracy of a model on a dataset", setup_eval, true},
    {"quantize", "Quantize a model: plan bit-widths, calibrate, evaluate, export QDQ ONNX", setup_quantize, true},
    {"pack", "Quantize with a plan and store the model at its real bit-widths (.mxq)", setup_pack, true},
    {"run", "Top-1 accuracy of a packed .mxq model on the libtorch-free runtime", setup_run, false},
    {"bench", "Batch-1 latency and batch-64 throughput of a .mxq model on the runtime", setup_bench, false},
    {"profile", "Per-layer batch-1 latency at each weight bit-width on the runtime (JSON table)", setup_profile, false},
    {"pareto", "Sensitivity table once, then the size x BOPs x predicted-accuracy front", setup_pareto, true},
    {"plan", "Solve a budget from a cached sensitivity table (no quantization, < 1 s)", setup_plan, false},
    {"demo", "Evaluate the bundled Fashion-MNIST models (the default end-to-end job)", setup_demo, true},
};

}  // namespace
}  // namespace mixq::cli

int run_cli(int argc, char** argv);

int main(int argc, char** argv) {
  // OpenBLAS's kernel choice and libgomp's wait policy are read at load time: fix them by
  // re-executing once when this CPU or machine needs it (core/runtime_env.h).
  mixq::reexec_with_runtime_env(argv);
  mixq::tune_malloc_for_tensors();  // see core/malloc_tuning.h
  // Under `mpirun -np N`, join the group (dist/dist.h): rank 0 runs the job, the other ranks share
  // its parallel parts (the sensitivity table, AdaQuant's parallel units) and leave when those are done.
  mixq::dist::init(&argc, &argv);
  const int code = run_cli(argc, argv);
  if (code == 0) mixq::dist::finalize();  // a failed rank exits without it: mpirun then ends the whole job
  return code;
}

namespace {
// Subcommands that use the ranks of an MPI launch; the others run on rank 0 alone.
bool uses_ranks(const std::string& name) { return name == "quantize" || name == "pareto"; }
// Errors of MPI workers say whose they are.
std::string rank_prefix() {
  return mixq::dist::is_root() ? std::string() : "MPI rank " + std::to_string(mixq::dist::rank()) + ": ";
}
}  // namespace

int run_cli(int argc, char** argv) {
  using namespace mixq::cli;
  CLI::App app{"mixq: mixed-precision post-training quantization of ONNX models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "mixq 0.1.0");
  struct Sub {
    CLI::App* app;
    RunFn run;
    bool safe_points;
  };
  std::vector<Sub> subs;
  for (const auto& c : kCommands) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    subs.push_back({sub, c.setup(*sub), c.safe_points});
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help / --version exit 0; every usage error is exit 2 (the README's table), not CLI11's
    // own codes (105 for a bad value, 109 for an extra argument, ...).
    return app.exit(e) == 0 ? 0 : static_cast<int>(mixq::ErrorKind::kInvalidArgument);
  } catch (const mixq::Error& e) {
    // An option's own parser (--act-scheme, --act-placement, ...) rejected its value.
    std::cerr << "error: " << e.what() << std::endl;
    return e.exit_code();
  }
  try {
    for (auto& s : subs)
      if (s.app->parsed()) {
        if (!uses_ranks(s.app->get_name()) && mixq::dist::size() > 1) {
          mixq::dist::release_workers();  // workers leave here; rank 0 keeps every core
          mixq::log::warn("mixq " + s.app->get_name() + " runs on MPI rank 0 alone; only quantize and pareto " +
                          "spread work over the ranks");
        }
        // SIGINT / SIGTERM then stop the job at its next safe point (core/interrupt.h).
        if (s.safe_points) mixq::install_interrupt_handler();
        return s.run();
      }
  } catch (const mixq::dist::WorkerDone&) {
    return 0;  // an MPI worker whose part of the job is over (rank 0 prints the results)
  } catch (const mixq::Interrupted& i) {
    // One message, no outputs written; 128 + signal as a shell reports a killed command.
    const char* name = i.signal == SIGTERM ? "SIGTERM" : "SIGINT";
    std::cerr << rank_prefix() << "interrupted (" << name
              << (mixq::dist::size() > 1 ? " from mpirun: an MPI rank failed or the job was stopped" : "")
              << "): stopped at a safe point, no output written";
    if (!mixq::resume_note().empty()) std::cerr << "; " << mixq::resume_note();
    std::cerr << std::endl;
    return 128 + i.signal;
  } catch (const mixq::Error& e) {
    std::cerr << rank_prefix() << "error: " << e.what() << std::endl;
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << rank_prefix() << "error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
