// quantize, pareto, plan_from_table and eval: each parses its options through the CLI's own table
// (api/job_options.h) and runs the same api/ call as its subcommand, so the two front ends cannot
// drift apart. mixq/__init__.py turns keyword arguments into those option tokens.
#include <CLI/CLI.hpp>

#include <ATen/Parallel.h>

#include "api/eval_job.h"
#include "api/job_options.h"
#include "api/pack_job.h"
#include "api/pareto_job.h"
#include "api/plan_job.h"
#include "api/quantize_job.h"
#include "api/quantize_outputs.h"
#include "api/run_job.h"
#include "api/write_packed.h"
#include "convert.h"
#include "core/atomic_file.h"
#include "core/log.h"
#include "mixq/error.h"
#include "module.h"

namespace mixq::py {

namespace {

// A Python callable kept alive by the progress sink; released with the GIL held, whichever thread
// drops the last reference.
struct PyCallable {
  pyb::object fn;
  ~PyCallable() {
    pyb::gil_scoped_acquire gil;
    fn = pyb::object();
  }
};

// The result of mixq.quantize: the job as run and everything it produced, for Result's methods.
struct QuantizeHandle {
  QuantizeJob job;
  QuantizeResult result;
  std::string report;  // the `--json` object

  void check_output(const std::string& path) const {
    MIXQ_CHECK(!same_file(path, job.model_path), ErrorKind::kInvalidArgument, "refusing to overwrite the input model '",
               job.model_path, "' with ", path);
  }
};

// {output name: every sample's values} of an evaluation that kept its outputs (empty without).
pyb::dict outputs_dict(const std::vector<std::string>& names, const EvalResult& r, bool keep) {
  pyb::dict d;
  if (keep)
    for (size_t i = 0; i < names.size() && i < r.outputs.size(); ++i) d[pyb::str(names[i])] = array_from_tensor(r.outputs[i]);
  return d;
}

}  // namespace

JobScope::JobScope(const pyb::object& progress, bool handle_signals) {
  if (handle_signals) signals_.emplace();
  if (!progress.is_none()) {
    auto fn = std::make_shared<PyCallable>();
    fn->fn = progress;
    set_progress_sink([fn](const ProgressEvent& e) {
      pyb::gil_scoped_acquire gil;
      try {
        fn->fn(e.label, e.unit, e.done, e.total, e.elapsed_seconds, e.final);
      } catch (pyb::error_already_set& err) {
        err.discard_as_unraisable("mixq progress callback");  // a broken bar must not end the job
      }
    });
    had_sink_ = true;
  }
}

JobScope::~JobScope() {
  if (had_sink_) set_progress_sink({});
}

void register_jobs(pyb::module_& m) {
  pyb::class_<QuantizeHandle, std::shared_ptr<QuantizeHandle>>(m, "QuantizeHandle")
      .def_readonly("report", &QuantizeHandle::report)
      .def("plan_json", [](const QuantizeHandle& h) { return plan_to_json(h.result.plan).dump(); })
      .def("save_onnx",
           [](const QuantizeHandle& h, const std::string& path) {
             h.check_output(path);
             pyb::gil_scoped_release nogil;
             save_qdq_onnx(h.result, path);
           })
      .def("save_plan",
           [](const QuantizeHandle& h, const std::string& path) {
             h.check_output(path);
             save_plan(h.result.plan, path);
           })
      .def("pack", [](const QuantizeHandle& h, const std::string& path) {
        h.check_output(path);
        pyb::gil_scoped_release nogil;
        return write_packed(h.result, path).dump();
      });

  m.def(
      "quantize",
      [](const std::string& model, const std::vector<std::string>& args, const pyb::object& progress,
         bool show_progress, bool handle_signals) {
        auto h = std::make_shared<QuantizeHandle>();
        QuantizeOutputs out;
        {
          CLI::App app{"mixq.quantize"};
          h->job.defaults.wbits = 4;
          add_quant_options(app, h->job);
          add_quantize_output_options(app, h->job, out);
          parse_options(app, args);
        }
        finish_quantize_options(h->job);
        h->job.model_path = model;
        h->job.qopts.progress = show_progress;
        JobScope scope(progress, handle_signals);
        pyb::gil_scoped_release nogil;
        prepare_quantize_outputs(h->job, out);
        h->result = run_quantize(h->job);
        h->report = write_quantize_outputs(h->job, h->result, out).dump();
        return h;
      },
      pyb::arg("model"), pyb::arg("args"), pyb::arg("progress"), pyb::arg("show_progress"),
      pyb::arg("handle_signals"));

  m.def(
      "pareto",
      [](const std::string& model, const std::vector<std::string>& args, const pyb::object& progress,
         bool show_progress, bool handle_signals) {
        QuantizeJob job;
        ParetoOutputs out;
        {
          CLI::App app{"mixq.pareto"};
          job.defaults.wbits = 8;
          add_quant_options(app, job);
          add_pareto_output_options(app, out);
          parse_options(app, args);
        }
        job.model_path = model;
        JobScope scope(progress, handle_signals);
        pyb::gil_scoped_release nogil;
        return run_pareto(job, out, show_progress).dump();
      },
      pyb::arg("model"), pyb::arg("args"), pyb::arg("progress"), pyb::arg("show_progress"),
      pyb::arg("handle_signals"));

  m.def(
      "plan_from_table",
      [](const std::vector<std::string>& args, const std::string& out) {
        QuantizeJob job;
        std::string model;
        {
          CLI::App app{"mixq.plan_from_table"};
          add_plan_options(app, job, model);
          parse_options(app, args);
        }
        pyb::gil_scoped_release nogil;
        PlanFromTable r = run_plan_from_table(job, model, out);
        return std::make_pair(plan_to_json(r.plan).dump(), r.summary.dump());
      },
      pyb::arg("args"), pyb::arg("out"));

  m.def(
      "eval",
      [](const std::vector<std::string>& args, bool keep_outputs, const pyb::object& progress, bool show_progress,
         bool handle_signals) {
        EvalJob job;
        {
          CLI::App app{"mixq.eval"};
          add_eval_options(app, job);
          parse_options(app, args);
        }
        job.keep_outputs = keep_outputs;
        EvalJobResult r;
        {
          JobScope scope(progress, handle_signals);
          pyb::gil_scoped_release nogil;
          r = run_eval(job, show_progress);
        }
        return std::make_pair(r.json.dump(), outputs_dict(r.output_names, r.result, keep_outputs));
      },
      pyb::arg("args"), pyb::arg("keep_outputs"), pyb::arg("progress"), pyb::arg("show_progress"),
      pyb::arg("handle_signals"));

  m.def(
      "pack",
      [](const std::vector<std::string>& args, bool calib_given, const pyb::object& progress, bool show_progress,
         bool handle_signals) {
        QuantizeJob job;
        PackOutputs out;
        {
          CLI::App app{"mixq.pack"};
          add_pack_options(app, job, out);
          parse_options(app, args);
        }
        finish_quantize_options(job);
        job.qopts.progress = show_progress;
        JobScope scope(progress, handle_signals);
        pyb::gil_scoped_release nogil;
        return run_pack(job, out, calib_given).dump();
      },
      pyb::arg("args"), pyb::arg("calib_given"), pyb::arg("progress"), pyb::arg("show_progress"),
      pyb::arg("handle_signals"));

  m.def(
      "run",
      [](const std::vector<std::string>& args, int threads, bool keep_outputs, const pyb::object& progress,
         bool show_progress, bool handle_signals) {
        RunJob job;
        {
          CLI::App app{"mixq.run"};
          add_run_options(app, job);
          parse_options(app, args);
        }
        job.threads = threads;
        job.keep_outputs = keep_outputs;
        RunJobResult r;
        {
          JobScope scope(progress, handle_signals);
          pyb::gil_scoped_release nogil;
          r = run_packed(job, show_progress);
        }
        return std::make_pair(r.json.dump(), outputs_dict(r.output_names, r.result, keep_outputs));
      },
      pyb::arg("args"), pyb::arg("threads"), pyb::arg("keep_outputs"), pyb::arg("progress"),
      pyb::arg("show_progress"), pyb::arg("handle_signals"));

  m.def("register_arrays",
        [](const std::string& name, const pyb::dict& arrays) { register_memory_arrays(name, tensors_from_dict(arrays)); });
  m.def("unregister_arrays", [](const std::string& name) { unregister_memory_arrays(name); });
  m.def("set_log_level", [](const std::string& level) {
    log::set_level(level == "quiet" ? log::Level::kQuiet : level == "verbose" ? log::Level::kVerbose : log::Level::kInfo);
  });
  m.def("set_threads", [](int n) { at::set_num_threads(n); });
  m.def("get_threads", []() { return at::get_num_threads(); });
}

}  // namespace mixq::py
