// The values crossing the sensitivity probe's cut (search/probe.h), per batch: held in memory up to
// a byte budget and written past it to an unlinked spill file (core/spill_file.h), read back on use
// into tensors of the stored sizes and strides. A channels-last activation comes back channels-last,
// so the runs from the cut compute exactly what they computed from resident values (the table is
// the same to the last bit: tests/unit/probe_cut_test.cpp). Why: a high-resolution CNN's cut holds
// every probe sample's activations at one or two points of the network (ResNet-50 at 224x224, 32
// samples, a cut inside layer1: 128 MB), beside the weights the probe already holds.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mixq {

class SpillFile;

class CutStore {
 public:
  // budget_bytes < 0: no limit (nothing spills).
  CutStore(size_t batches, int64_t budget_bytes, std::string spill_dir);
  ~CutStore();
  CutStore(CutStore&&) noexcept;
  CutStore& operator=(CutStore&&) noexcept;

  size_t batches() const { return entries_.size(); }
  void put(size_t batch, const std::string& name, const at::Tensor& t);
  // Batch b's values (spilled ones read back into new tensors).
  std::map<std::string, at::Tensor> get(size_t batch) const;
  // Frees batch b's resident values and their share of the budget (after its last get).
  void drop(size_t batch);
  int64_t spilled_bytes() const;

 private:
  struct Entry {
    at::Tensor t;            // resident, or undefined when spilled
    int64_t offset = -1;     // in file_ when spilled
    std::vector<int64_t> sizes, strides;
    at::ScalarType dtype = at::kFloat;
    int64_t nbytes = 0;
  };
  std::vector<std::map<std::string, Entry>> entries_;
  int64_t budget_ = -1, resident_ = 0;
  std::string spill_dir_;
  std::unique_ptr<SpillFile> file_;
};

}  // namespace mixq
