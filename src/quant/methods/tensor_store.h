// Cached per-sample tensors for reconstruction (a unit's inputs, float outputs, squared
// gradients): rows appended batch by batch, then read back by random index batches.
//
// Memory is bounded by a CacheBudget shared by every store of a run: a store that would push the
// total over the limit writes its rows to an unlinked temporary file instead and maps it
// read-only, so the page cache (not the heap) holds them and nothing is left behind on exit or
// Ctrl-C.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mixq {

class SpillFile;

struct CacheBudget {
  int64_t limit_bytes = int64_t(2) << 30;  // --cache-mb
  int64_t used_bytes = 0;                  // in-memory rows of all live stores
  std::string spill_dir;                   // "" = $TMPDIR or /tmp
};

class TensorStore {
 public:
  explicit TensorStore(CacheBudget* budget);
  ~TensorStore();
  TensorStore(TensorStore&& o) noexcept;
  TensorStore& operator=(TensorStore&& o) noexcept;
  TensorStore(const TensorStore&) = delete;
  TensorStore& operator=(const TensorStore&) = delete;

  // [b, ...] tensors with equal trailing shapes; stored as float32.
  void append(const at::Tensor& batch);
  void finish();  // after the last append: concatenates or maps the spill file

  int64_t rows() const { return rows_; }
  bool spilled() const { return file_ != nullptr; }
  int64_t bytes() const;
  // Rows idx (int64 [k]) as a new [k, ...] tensor (4-D: channels-last strides).
  at::Tensor gather(const at::Tensor& idx) const;
  // Rows [begin, end) (a view into the store; read-only).
  at::Tensor slice(int64_t begin, int64_t end) const;

 private:
  void release();
  // Image rows ([C, H, W]) are stored as [H, W, C]; logical() views stored rows as [n, C, H, W].
  bool channels_last() const { return row_shape_.size() == 3; }
  at::Tensor logical(const at::Tensor& rows) const { return channels_last() ? rows.permute({0, 3, 1, 2}) : rows; }
  CacheBudget* budget_ = nullptr;  // read by release() when a move constructs into this store
  std::vector<at::Tensor> pending_;
  std::vector<int64_t> row_shape_;  // trailing dims
  int64_t rows_ = 0, row_elems_ = 0, counted_ = 0;
  at::Tensor all_;                  // [rows, ...] after finish()
  std::unique_ptr<SpillFile> file_;  // set once the store spills
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  bool finished_ = false;
};

}  // namespace mixq
