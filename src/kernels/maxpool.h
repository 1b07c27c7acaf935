// 2-D max pooling of float NCHW planes (ONNX MaxPool without the Indices output): explicit begin
// pads (the end pads and ceil_mode only set OH/OW), strides, dilations; taps outside the input are
// skipped, a window with no tap gives -inf; NaN propagates as in libtorch and ONNX's reference. Max
// is exact, so every order gives the same bits: the runtime and the libtorch executor share it
// (libtorch 1.13's NCHW max pool is a scalar loop ~9x slower than its channels-last one). No
// libtorch.
#pragma once

#include <cstdint>

namespace mixq::kernels {

struct MaxPool2d {
  int64_t H = 0, W = 0, OH = 0, OW = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0;
};

// x: planes x H x W; y: planes x OH x OW; planes spread over `threads` OpenMP threads.
void maxpool2d_f32(const float* x, float* y, int64_t planes, const MaxPool2d& g, int threads);
// The scalar reference (one window at a time).
void maxpool2d_f32_ref(const float* x, float* y, int64_t planes, const MaxPool2d& g);

}  // namespace mixq::kernels
