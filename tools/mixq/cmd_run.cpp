// mixq run model.mxq --data SPEC: top-1 accuracy of a packed model on the libtorch-free runtime,
// computed like `mixq eval` (first output = [batch, classes] scores).
#include <chrono>
#include <cmath>
#include <cstdio>

#include "common.h"
#include "core/progress.h"
#include "mixq/error.h"
#include "rt_data.h"

namespace mixq::cli {

RunFn setup_run(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    std::string model, data = "fmnist:test", isa = "auto";
    int64_t batch = 250;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("model", o->model, "Packed model (.mxq)")->required();
  sub.add_option("-d,--data", o->data, "Dataset (as for eval)")->capture_default_str();
  sub.add_option("-b,--batch", o->batch, "Batch size")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  sub.add_option("--isa", o->isa, "Kernel path: auto (MIXQ_ISA or cpuid), ref, avx2, avx512")->capture_default_str();
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    const rt::ModelOptions mo = runtime_options(o->isa, o->g.threads);
    rt::Model m = rt::Model::load(o->model, mo);
    auto ds = open_dataset_for(m.packed(), o->data);
    MIXQ_CHECK(ds->has_labels(), ErrorKind::kInvalidData, o->data, " has no labels; `mixq run` needs them for top-1");
    int64_t correct = 0, n = 0;
    double loss = 0;
    Progress bar("run", o->g.quiet ? 0 : ds->size(), "img");
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t b = 0; b < ds->size(); b += o->batch) {
      const int64_t e = std::min(ds->size(), b + o->batch);
      Batch batch = ds->get(b, e);
      std::vector<rt::Tensor> y = m.run(to_runtime(batch));
      const rt::Tensor& s = y.at(0);
      MIXQ_CHECK(s.rank() == 2 && s.shape[0] == e - b && s.dtype == pack::ElemType::kFloat32, ErrorKind::kInvalidData,
                 o->model, ": first output is ", rt::shape_str(s.shape), ", not [batch, classes] scores");
      const int64_t C = s.shape[1];
      const int64_t* lab = batch.labels.data_ptr<int64_t>();
      for (int64_t i = 0; i < e - b; ++i) {
        const float* row = s.f.data() + i * C;
        int64_t best = 0;
        float mx = row[0];
        for (int64_t c = 1; c < C; ++c)
          if (row[c] > mx) { mx = row[c]; best = c; }
        double se = 0;
        for (int64_t c = 0; c < C; ++c) se += std::exp(double(row[c]) - mx);
        loss += std::log(se) + mx - row[lab[i]];
        correct += best == lab[i];
      }
      n += e - b;
      bar.advance(e - b);
    }
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double top1 = n ? 100.0 * double(correct) / double(n) : 0;
    int int_layers = 0;
    int64_t weight_bytes = 0;
    for (const auto& p : m.layer_paths()) {
      int_layers += p.int_path;
      weight_bytes += p.weight_bytes;
    }
    if (o->g.verbose)
      for (const auto& p : m.layer_paths())
        std::fprintf(stderr, "layer %s (%s): %s%s, kernel %s, %lld weight bytes held\n", p.node.c_str(), p.op.c_str(),
                     p.int_path ? "integer" : "float: ", p.int_path ? "" : p.why_float.c_str(), p.kernel.c_str(),
                     (long long)p.weight_bytes);
    if (o->g.json) {
      print_json({{"model", o->model}, {"data", o->data}, {"top1", top1}, {"correct", correct}, {"samples", n},
                  {"loss", n ? loss / n : 0}, {"seconds", sec}, {"images_per_second", n / sec},
                  {"isa", kernels::isa_name(m.isa())}, {"threads", mo.threads},
                  {"integer_layers", int_layers}, {"layers", m.layer_paths().size()},
                  {"weight_bytes", weight_bytes}});
    } else {
      std::printf("%s on %s: top-1 %.2f%% (%lld/%lld), loss %.4f, %.2f s (%.0f img/s), %s, %d of %zu layers integer\n",
                  o->model.c_str(), ds->describe().c_str(), top1, (long long)correct, (long long)n, n ? loss / n : 0, sec,
                  n / sec, kernels::isa_name(m.isa()), int_layers, m.layer_paths().size());
    }
    return 0;
  };
}

}  // namespace mixq::cli
