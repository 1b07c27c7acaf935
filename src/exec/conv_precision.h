// Precision of Conv's math while a reconstruction loop trains (mixq quantize --recon-precision).
//
// bf16: inputs, weights and bias are rounded to bfloat16, oneDNN convolves them (AMX / AVX-512
// BF16 on CPUs that have them: 2-4x faster than float32 at the fixtures' sizes, forward and both
// gradients) and the result is returned as float32; autograd carries the casts, so the float32
// parameters being learned (rounding variables, steps) and every element-wise op around the
// convolutions stay float32 (the usual mixed-precision training recipe). Outside a scope, and in
// every inference run, Conv computes in the tensors' own dtype.
#pragma once

namespace mixq {

enum class ConvPrecision { kFloat32, kBFloat16 };

// The precision Conv uses on this thread now.
ConvPrecision conv_precision();

// Sets the precision for the current thread until destroyed (then restores the previous one).
class ConvPrecisionScope {
 public:
  explicit ConvPrecisionScope(ConvPrecision p);
  ~ConvPrecisionScope();
  ConvPrecisionScope(const ConvPrecisionScope&) = delete;
  ConvPrecisionScope& operator=(const ConvPrecisionScope&) = delete;

 private:
  ConvPrecision prev_;
};

// Inference layout of 2-D convolutions: while grad mode is off, Conv runs float32 4-D inputs in
// channels-last (NHWC) memory order and returns channels-last results, so a chain of Conv,
// element-wise, pooling and Add nodes stays NHWC end to end (libtorch's element-wise kernels keep
// the layout; reshapes copy to the logical order where they need to). oneDNN convolves NHWC tensors
// directly; on NCHW tensors it reorders input and output to its blocked layout on every call, and
// its depthwise kernels gain most (2-4x on 224x224 mobile models). Values keep their logical NCHW
// shape: only strides differ, so hooks and kernels see the same tensors up to layout.
// Off when MIXQ_NO_CHANNELS_LAST or MIXQ_EXEC_LEGACY is set to something other than "" or "0"
// (read when a Conv kernel is built, i.e. when an Executor is constructed).
bool conv_channels_last_enabled();

// Whether inference-mode 2-D float convolutions run on oneDNN directly (exec/dnnl_conv_cache.h)
// rather than through at::convolution: with channels-last, unless MIXQ_NO_DNNL_CONV is set to
// something other than "" or "0" (read when a Conv kernel is built).
bool conv_dnnl_enabled();

// MIXQ_EXEC_LEGACY=1: the executor without the inference fast paths added for issue 17 item 4
// (channels-last Conv, Conv + activation and element-wise chain fusions), for before/after runs.
bool exec_legacy_by_env();

// Whether this CPU computes bf16 dot products natively (AVX-512 BF16 or AMX-BF16); without
// them oneDNN emulates bf16 and is slower than float32.
bool cpu_has_native_bf16();

// Whether it has AMX-BF16, the only bf16 path measured faster than float32 in the reconstruction
// loops: with AVX-512 BF16 alone (no AMX) a BRECQ run of the ResNet fixture took 1.37x the CPU
// time of float32 (BENCHMARKS.md, issue 23), so `--recon-precision auto` picks bf16 only here.
bool cpu_has_amx_bf16();

}  // namespace mixq
