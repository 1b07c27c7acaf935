// mixq bench model.mxq: batch-1 latency (median of --runs) and batch-64 throughput of the runtime
// on the first images of --data (api/bench.h); with --onnx MODEL the libtorch executor runs the same
// images in the same process, so the two are measured side by side.
#include <cstdio>

#include "api/bench.h"
#include "api/rt_data.h"
#include "common.h"

namespace mixq::cli {

RunFn setup_bench(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    BenchOptions b;
    std::string isa = "auto";
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("model", o->b.model, "Packed model (.mxq)")->required();
  sub.add_option("-d,--data", o->b.data, "Images to run (the first 64 are used)")->capture_default_str();
  sub.add_option("--runs", o->b.runs, "Timed batch-1 runs (median reported)")->capture_default_str();
  sub.add_option("--runs64", o->b.runs64, "Timed batch-64 runs (median reported)")->capture_default_str();
  sub.add_option("--isa", o->isa, "Kernel path: auto, ref, avx2, avx512")->capture_default_str();
  sub.add_option("--onnx", o->b.onnx, "Also time this ONNX model on the libtorch executor (same images, same run)");
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    const rt::ModelOptions mo = runtime_options(o->isa, o->g.threads);
    o->b.node_profile = o->g.verbose;
    nlohmann::json j = bench_packed(o->b, mo);
    if (j.contains("nodes")) {  // where batch-1 time goes (stderr, --verbose)
      for (size_t i = 0; i < std::min<size_t>(12, j["nodes"].size()); ++i)
        std::fprintf(stderr, "  %-50s %8.4f ms\n", j["nodes"][i]["node"].get<std::string>().c_str(),
                     j["nodes"][i]["ms"].get<double>());
      std::fprintf(stderr, "  by op kind (batch 1, %.4f ms in nodes):\n", j["ms_in_nodes"].get<double>());
      for (const auto& k : j["by_kind"])
        std::fprintf(stderr, "  %-24s %3d nodes %8.4f ms %5.1f%%\n", k["kind"].get<std::string>().c_str(),
                     k["nodes"].get<int>(), k["ms"].get<double>(), 100 * k["share"].get<double>());
      for (const char* k : {"nodes", "by_kind", "ms_in_nodes"}) j.erase(k);
    }
    if (o->g.json) {
      print_json(j);
      return 0;
    }
    const long long nb = j["batch"].get<long long>();
    std::printf("%s (%s, %d threads): batch 1 %.3f ms (cpu %.3f ms), batch %lld %.0f img/s (cpu %.3f ms)\n",
                o->b.model.c_str(), j["isa"].get<std::string>().c_str(), mo.threads, j["batch1_ms"].get<double>(),
                j["batch1_cpu_ms"].get<double>(), nb, j["batch64_images_per_second"].get<double>(),
                j["batch64_cpu_ms"].get<double>());
    if (j.contains("executor"))
      std::printf("%s on the libtorch executor: batch 1 %.3f ms, batch %lld %.0f img/s (runtime speedup %.2fx / %.2fx)\n",
                  o->b.onnx.c_str(), j["executor"]["batch1_ms"].get<double>(), nb,
                  j["executor"]["batch64_images_per_second"].get<double>(), j["batch1_speedup"].get<double>(),
                  j["batch64_speedup"].get<double>());
    return 0;
  };
}

}  // namespace mixq::cli
