// IDX files (the MNIST / Fashion-MNIST format), optionally gzip-compressed.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace mixq {

// Reads an IDX file of unsigned bytes (type 0x08): returns a uint8 tensor with the file's dims.
// Reads .gz transparently (zlib). Checks magic, rank and that the payload matches the dims.
at::Tensor load_idx_u8(const std::string& path);

}  // namespace mixq
