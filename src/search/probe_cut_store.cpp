#include "search/probe_cut_store.h"

#include <ATen/ATen.h>

#include "core/spill_file.h"
#include "mixq/error.h"

namespace mixq {

CutStore::CutStore(size_t batches, int64_t budget_bytes, std::string spill_dir)
    : entries_(batches), budget_(budget_bytes), spill_dir_(std::move(spill_dir)) {}

CutStore::~CutStore() = default;
CutStore::CutStore(CutStore&&) noexcept = default;
CutStore& CutStore::operator=(CutStore&&) noexcept = default;

void CutStore::put(size_t batch, const std::string& name, const at::Tensor& t) {
  MIXQ_ASSERT(batch < entries_.size(), "cut batch ", batch, " of ", entries_.size());
  Entry e;
  e.nbytes = static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
  // A dense tensor's elements are one block of memory from data_ptr (strides of any order): that
  // block is what is written, and empty_strided gives the same layout back. Anything else (a
  // strided view) stays resident.
  const bool spill = budget_ >= 0 && resident_ + e.nbytes > budget_ && t.is_non_overlapping_and_dense() &&
                     t.device().is_cpu() && e.nbytes > 0;
  if (!spill) {
    e.t = t;
    resident_ += e.nbytes;
  } else {
    if (!file_)
      file_ = std::make_unique<SpillFile>(spill_dir_, "the sensitivity probe's cached activations",
                                          "pass --cache-dir or raise --max-memory");
    e.sizes = t.sizes().vec();
    e.strides = t.strides().vec();
    e.dtype = t.scalar_type();
    e.offset = file_->append(t.data_ptr(), static_cast<size_t>(e.nbytes));
  }
  entries_[batch][name] = std::move(e);
}

std::map<std::string, at::Tensor> CutStore::get(size_t batch) const {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, e] : entries_.at(batch)) {
    if (e.t.defined()) {
      out[name] = e.t;
      continue;
    }
    at::Tensor t = at::empty_strided(e.sizes, e.strides, at::TensorOptions().dtype(e.dtype));
    file_->read(e.offset, t.data_ptr(), static_cast<size_t>(e.nbytes));
    out[name] = t;
  }
  return out;
}

void CutStore::drop(size_t batch) {
  for (auto& [name, e] : entries_.at(batch))
    if (e.t.defined()) resident_ -= e.nbytes;
  entries_[batch].clear();
}

int64_t CutStore::spilled_bytes() const { return file_ ? file_->size() : 0; }

}  // namespace mixq
