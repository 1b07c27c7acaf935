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

// Whether this CPU computes bf16 dot products natively (AVX-512 BF16 or AMX-BF16); without
// them oneDNN emulates bf16 and is slower than float32.
bool cpu_has_native_bf16();

}  // namespace mixq
