// glibc malloc settings for a process that allocates and frees many large tensors.
//
// Why: glibc serves blocks above M_MMAP_THRESHOLD with a fresh mmap and returns freed heap tops
// above M_TRIM_THRESHOLD to the kernel. An executor run at batch 256 allocates and frees
// activations of ~10 MB per op (ViT attention scores: 256 x 4 x 49 x 49 floats); with the
// defaults many of them come back as new pages every run, and the page faults (zeroing 2,400
// pages each) cost more than the math: ViT batch-256 ran at ~2,900 img/s instead of ~4,300
// (BENCHMARKS.md, executor). Keeping freed memory in the heap makes the next run reuse it.
// Blocks above glibc's largest mmap threshold (32 MiB) are kept on the heap as well (M_MMAP_MAX).
// Users who set MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_MAX_ (or preload
// another allocator) keep their settings. No effect outside glibc.
#pragma once

namespace mixq {

// Call once at program start (the CLI and the benchmarks do). Returns true if settings changed.
bool tune_malloc_for_tensors();

// While long-lived tensors are made (a model's weights as it loads; a quantized model's codes and
// dequantized weights), blocks of 256 KiB and more are mapped again, as glibc does by default.
// Why: import frees the protobuf's initializer bytes one tensor at a time as it makes the tensors,
// and a freed mapped block goes back to the kernel where a freed heap block stays resident below
// the tensors made after it (the file's bytes and the tensors both resident: 2x the weights); and
// whole-model tensor sets freed later leave no heap holes that only some later sizes fit. The
// tuned settings come back when the scope ends. No effect unless tune_malloc_for_tensors changed
// them. Not for concurrent use from several threads (such a phase is one thread's work).
class MappedTensorScope {
 public:
  MappedTensorScope();
  ~MappedTensorScope();
  MappedTensorScope(const MappedTensorScope&) = delete;
  MappedTensorScope& operator=(const MappedTensorScope&) = delete;
};

}  // namespace mixq
