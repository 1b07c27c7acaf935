// Executor throughput on one model: runs it on the first `batch` samples of `--data` (default: the
// Fashion-MNIST test images, preprocessed as the model's metadata says; any open_dataset() spec
// such as a .npy file works) for `iters` timed iterations after `warmup`, and prints one JSON
// object. Driven by bench/exec_vs_torch.py (PyTorch eager side by side) and bench/exec_vs_ort.py
// (ONNX Runtime side by side).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>

#include "core/malloc_tuning.h"
#include "core/runtime_env.h"
#include "data/dataset.h"
#include "exec/executor.h"
#include "onnx/import.h"

int main(int argc, char** argv) {
  mixq::reexec_with_runtime_env(argv);  // see core/runtime_env.h (MIXQ_NO_RUNTIME_ENV=1: off)
  mixq::tune_malloc_for_tensors();  // see core/malloc_tuning.h
  std::string model, data;
  int64_t batch = 1, iters = 100, warmup = 10, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") model = v;
    else if (a == "--batch") batch = std::stoll(v);
    else if (a == "--iters") iters = std::stoll(v);
    else if (a == "--warmup") warmup = std::stoll(v);
    else if (a == "--threads") threads = std::stoll(v);
    else if (a == "--data") data = v;
  }
  if (model.empty()) {
    std::cerr << "usage: mixq_exec_bench --model M.onnx [--batch B] [--iters N] [--warmup W] [--threads T] [--data SPEC]\n";
    return 2;
  }
  try {
    at::set_num_threads(static_cast<int>(threads));
    mixq::Graph g = mixq::load_onnx(model);
    auto ds = mixq::open_dataset(data.empty() ? "fmnist:test:" + std::to_string(batch) : data, g.inputs,
                                 mixq::preprocess_from_metadata(g));
    auto inputs = ds->get(0, batch).inputs;
    mixq::Executor ex(std::move(g));
    for (int64_t i = 0; i < warmup; ++i) ex.run(inputs);
    std::vector<double> times;
    for (int64_t i = 0; i < iters; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      ex.run(inputs);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    double median = times[times.size() / 2];
    nlohmann::json j = {{"model", model}, {"batch", batch}, {"threads", threads}, {"iters", iters},
                        {"median_ms", median * 1e3}, {"images_per_second", batch / median},
                        {"runtime_env", mixq::runtime_env_changes()}};
    std::cout << j.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
