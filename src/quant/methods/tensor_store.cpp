#include "quant/methods/tensor_store.h"

#include <ATen/ATen.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "core/spill_file.h"
#include "mixq/error.h"

namespace mixq {

TensorStore::TensorStore(CacheBudget* budget) : budget_(budget) {}

TensorStore::~TensorStore() { release(); }

TensorStore::TensorStore(TensorStore&& o) noexcept { *this = std::move(o); }

TensorStore& TensorStore::operator=(TensorStore&& o) noexcept {
  if (this == &o) return *this;
  release();
  budget_ = o.budget_;
  pending_ = std::move(o.pending_);
  row_shape_ = std::move(o.row_shape_);
  rows_ = o.rows_;
  row_elems_ = o.row_elems_;
  counted_ = o.counted_;
  all_ = std::move(o.all_);
  file_ = std::move(o.file_);
  map_ = o.map_;
  map_bytes_ = o.map_bytes_;
  finished_ = o.finished_;
  o.map_ = nullptr;
  o.counted_ = 0;
  return *this;
}

void TensorStore::release() {
  all_ = at::Tensor();
  pending_.clear();
  if (map_) munmap(map_, map_bytes_);
  map_ = nullptr;
  file_.reset();
  if (budget_) budget_->used_bytes -= counted_;
  counted_ = 0;
}

int64_t TensorStore::bytes() const { return rows_ * row_elems_ * static_cast<int64_t>(sizeof(float)); }

void TensorStore::append(const at::Tensor& batch_in) {
  MIXQ_ASSERT(!finished_, "append after finish");
  at::Tensor batch = batch_in.detach().to(at::kFloat);
  MIXQ_ASSERT(batch.dim() >= 1, "cached tensors need a batch dimension");
  std::vector<int64_t> shape(batch.sizes().begin() + 1, batch.sizes().end());
  // Images are kept channels-last (rows of [H, W, C]): gathered batches are then channels-last
  // views with no transposing copy, and libtorch's oneDNN convolutions (forward and both
  // gradients) run 1.5-4x faster on channels-last inputs than on NCHW at these sizes.
  batch = shape.size() == 3 ? batch.permute({0, 2, 3, 1}).contiguous() : batch.contiguous();
  if (rows_ == 0) {
    row_shape_ = shape;
    row_elems_ = 1;
    for (int64_t d : shape) row_elems_ *= d;
  }
  MIXQ_CHECK(shape == row_shape_, ErrorKind::kInvalidData, "cached tensor changed shape between batches");
  const int64_t nbytes = batch.numel() * static_cast<int64_t>(sizeof(float));
  if (!file_ && budget_->used_bytes + nbytes > budget_->limit_bytes) {
    // Spill: everything so far and from now on goes to an unlinked temporary file.
    file_ = std::make_unique<SpillFile>(budget_->spill_dir, "reconstruction caches",
                                        "pass --cache-dir or raise --cache-mb");
    std::vector<at::Tensor> old = std::move(pending_);
    pending_.clear();
    budget_->used_bytes -= counted_;
    counted_ = 0;
    for (const auto& t : old) file_->append(t.data_ptr(), static_cast<size_t>(t.numel()) * sizeof(float));
  }
  if (file_) {
    file_->append(batch.data_ptr(), static_cast<size_t>(nbytes));
  } else {
    pending_.push_back(batch);
    budget_->used_bytes += nbytes;
    counted_ += nbytes;
  }
  rows_ += batch.size(0);
}

void TensorStore::finish() {
  if (finished_) return;
  finished_ = true;
  std::vector<int64_t> shape = {rows_};
  shape.insert(shape.end(), row_shape_.begin(), row_shape_.end());
  if (channels_last()) shape = {rows_, row_shape_[1], row_shape_[2], row_shape_[0]};
  if (!file_) {
    all_ = pending_.empty() ? at::empty(shape, at::kFloat) : at::cat(pending_, 0);
    pending_.clear();
    return;
  }
  map_bytes_ = static_cast<size_t>(bytes());
  if (map_bytes_ == 0) {
    all_ = at::empty(shape, at::kFloat);
    return;
  }
  map_ = mmap(nullptr, map_bytes_, PROT_READ, MAP_SHARED, file_->fd(), 0);
  MIXQ_CHECK(map_ != MAP_FAILED, ErrorKind::kIO, "mapping the cache spill file failed: ", std::strerror(errno));
  all_ = at::from_blob(map_, shape, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor TensorStore::gather(const at::Tensor& idx) const {
  MIXQ_ASSERT(finished_, "gather before finish");
  return logical(all_.index_select(0, idx));
}

at::Tensor TensorStore::slice(int64_t begin, int64_t end) const {
  MIXQ_ASSERT(finished_, "slice before finish");
  return logical(all_.slice(0, begin, end));
}

}  // namespace mixq
