// NumPy files: .npy bytes (mixq::parse_npy) and, for inputs that start like a zip archive ("PK"),
// .npz archives (mixq::load_npz, through a scratch file: libzip reads paths).
#include <cstdint>
#include <string>

#include "data/npy.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
    const std::string path = mixq::fuzz::write_scratch("in.npz", data, size);
    mixq::fuzz::expect_clean([&] { mixq::load_npz(path); });
  } else {
    mixq::fuzz::expect_clean([&] { mixq::parse_npy(bytes, "fuzz.npy"); });
  }
  return 0;
}
