// The settings of every job, as one table of command-line options: `mixq` declares them on its
// subcommands, and the Python module (python/) parses its keyword arguments through the same table,
// so both front ends share every default, check and error message (`--wbits 9` and
// `mixq.quantize(..., wbits=9)` fail alike).
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace mixq {

struct PreprocessOverride;
struct QuantizeJob;
struct QuantizeOutputs;
struct ParetoOutputs;
struct EvalJob;
struct RunJob;
struct PackOutputs;

// Bits, granularity, method, reconstruction, search, budget, data and resume options (quantize,
// pack, pareto, demo).
void add_quant_options(CLI::App& sub, QuantizeJob& job);

// What `quantize` adds: --plan, --eval, --save-outputs, --no-float-eval and the output files
// (-o, --plan-out, --report, --report-html, --pack).
void add_quantize_output_options(CLI::App& sub, QuantizeJob& job, QuantizeOutputs& out);

// What `pareto` adds: -o, --report-html, --table-out (required), --grid-step.
void add_pareto_output_options(CLI::App& sub, ParetoOutputs& out);

// What `eval` takes: the model, --data, --batch, the data options, --reference, --metric,
// --save-outputs, --save-logits.
void add_eval_options(CLI::App& sub, EvalJob& job);

// What `pack` takes: the model, every quantize option, --plan, --eval, -o (required), --float.
void add_pack_options(CLI::App& sub, QuantizeJob& job, PackOutputs& out);

// What `run` takes: the .mxq model, --data, --batch, --isa, --reference, --metric, --save-outputs
// and the data options (--threads is a global option: RunJob::threads).
void add_run_options(CLI::App& sub, RunJob& job);

// What `plan` takes: --from-table (required), --model, --search (ip, pareto, genetic; default ip),
// --budget-bits, --seed and the budget options.
void add_plan_options(CLI::App& sub, QuantizeJob& job, std::string& model);

// After parsing quantize's or pack's options: --wbits is the uniform allocator's width and the
// plan's default width alike.
void finish_quantize_options(QuantizeJob& job);

// --budget-*, --max-drop, --signal, --hw, --sens-*, --table (quantize, pareto, plan).
void add_budget_options(CLI::App& sub, QuantizeJob& job);

// --checkpoint, --resume, --no-resume, --max-memory (part of add_quant_options).
void add_resume_options(CLI::App& sub, QuantizeJob& job);

// --scale/--mean/--std (numbers or per-channel comma lists, over the model's mixq.input_*
// metadata) and, when `input_shapes` is given, the repeatable --input-shape NAME:d0,d1,...
void add_data_options(CLI::App& sub, PreprocessOverride& pre, std::vector<std::string>* input_shapes);

// Parses `args` (option tokens, no program name) into the options declared on `app` (CLI11's
// parse, without a subcommand). A usage error throws mixq::Error(kInvalidArgument) with CLI11's
// message, as `mixq` reports it.
void parse_options(CLI::App& app, std::vector<std::string> args);

}  // namespace mixq
