#include "data/npy.h"

#include <ATen/ops/empty.h>
#include <zip.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/atomic_file.h"
#include "mixq/error.h"

namespace mixq {

namespace {

struct NpyDtype {
  const char* descr;
  at::ScalarType type;
  size_t size;
};
// Little-endian (or byte-sized) types only; '=' is native order, which is little-endian here.
const NpyDtype kNpyTypes[] = {
    {"f4", at::kFloat, 4}, {"f8", at::kDouble, 8}, {"f2", at::kHalf, 2},  {"i8", at::kLong, 8},
    {"i4", at::kInt, 4},   {"i2", at::kShort, 2},  {"i1", at::kChar, 1},  {"u1", at::kByte, 1},
    {"b1", at::kBool, 1},
};

// Value of `key` in the header dict: the text after "'key':" up to the matching delimiter.
std::string header_field(const std::string& header, const std::string& key, const std::string& what) {
  auto k = header.find("'" + key + "'");
  MIXQ_CHECK(k != std::string::npos, ErrorKind::kInvalidData, what, ": .npy header has no '", key,
             "' field");
  auto colon = header.find(':', k);
  MIXQ_CHECK(colon != std::string::npos, ErrorKind::kInvalidData, what, ": malformed .npy header");
  size_t p = colon + 1;
  while (p < header.size() && header[p] == ' ') ++p;
  MIXQ_CHECK(p < header.size(), ErrorKind::kInvalidData, what, ": malformed .npy header");
  if (header[p] == '\'') {
    auto end = header.find('\'', p + 1);
    MIXQ_CHECK(end != std::string::npos, ErrorKind::kInvalidData, what, ": malformed .npy header");
    return header.substr(p + 1, end - p - 1);
  }
  if (header[p] == '(') {
    auto end = header.find(')', p);
    MIXQ_CHECK(end != std::string::npos, ErrorKind::kInvalidData, what, ": malformed .npy header");
    return header.substr(p + 1, end - p - 1);
  }
  auto end = header.find_first_of(",}", p);
  return header.substr(p, end == std::string::npos ? std::string::npos : end - p);
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot open '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

at::Tensor parse_npy(const std::string& bytes, const std::string& what) {
  static const char kMagic[] = "\x93NUMPY";
  MIXQ_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), kMagic, 6) == 0,
             ErrorKind::kInvalidData, what, ": not a .npy file (bad magic)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else {
    MIXQ_CHECK(major == 2 || major == 3, ErrorKind::kInvalidData, what, ": .npy version ", int(major),
               " is not supported");
    MIXQ_CHECK(bytes.size() >= 12, ErrorKind::kInvalidData, what, ": truncated .npy header");
    uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    header_start = 12;
  }
  MIXQ_CHECK(header_len <= bytes.size() - header_start, ErrorKind::kInvalidData, what,
             ": truncated .npy header");
  const std::string header = bytes.substr(header_start, header_len);
  const size_t data_start = header_start + header_len;

  std::string descr = header_field(header, "descr", what);
  MIXQ_CHECK(descr.size() >= 2, ErrorKind::kInvalidData, what, ": bad dtype '", descr, "'");
  char order = descr[0];
  std::string code = descr.substr(1);
  MIXQ_CHECK(order == '<' || order == '|' || order == '=', ErrorKind::kInvalidData, what,
             ": big-endian arrays ('", descr, "') are not supported; save with a little-endian dtype");
  const NpyDtype* dt = nullptr;
  for (const auto& t : kNpyTypes)
    if (code == t.descr) dt = &t;
  MIXQ_CHECK(dt != nullptr, ErrorKind::kInvalidData, what, ": dtype '", descr,
             "' is not supported (use float32, float64, float16, int8-64, uint8 or bool)");
  std::string fortran = header_field(header, "fortran_order", what);
  MIXQ_CHECK(fortran.find("False") != std::string::npos, ErrorKind::kInvalidData, what,
             ": Fortran-ordered arrays are not supported (save np.ascontiguousarray(x))");

  std::vector<int64_t> shape;
  std::string dims = header_field(header, "shape", what);
  std::stringstream ss(dims);
  std::string item;
  int64_t numel = 1;
  while (std::getline(ss, item, ',')) {
    size_t a = item.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    int64_t d;
    try {
      d = std::stoll(item.substr(a));
    } catch (const std::exception&) {
      throw Error(ErrorKind::kInvalidData, what + ": bad shape '(" + dims + ")' in .npy header");
    }
    MIXQ_CHECK(d >= 0 && (d == 0 || numel <= (int64_t(1) << 40) / d), ErrorKind::kInvalidData, what,
               ": bad or too large shape '(", dims, ")'");
    numel *= d;
    shape.push_back(d);
  }
  const size_t nbytes = static_cast<size_t>(numel) * dt->size;
  MIXQ_CHECK(bytes.size() - data_start == nbytes, ErrorKind::kInvalidData, what, ": holds ",
             bytes.size() - data_start, " data bytes but shape (", dims, ") of ", descr, " needs ",
             nbytes, " (truncated or corrupt file)");
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dt->type));
  if (nbytes) std::memcpy(t.data_ptr(), bytes.data() + data_start, nbytes);
  return t;
}

at::Tensor load_npy(const std::string& path) { return parse_npy(read_all(path), path); }

namespace {
std::string npy_bytes(const at::Tensor& t0) {
  at::Tensor t = t0.contiguous();
  const NpyDtype* dt = nullptr;
  for (const auto& d : kNpyTypes)
    if (d.type == t.scalar_type()) dt = &d;
  MIXQ_CHECK(dt != nullptr, ErrorKind::kInvalidArgument, "cannot save a ", t.scalar_type(), " tensor as .npy");
  std::string shape;
  for (int64_t i = 0; i < t.dim(); ++i) shape += std::to_string(t.size(i)) + (t.dim() == 1 || i + 1 < t.dim() ? "," : "");
  const char order = dt->size == 1 ? '|' : '<';
  std::string header = std::string("{'descr': '") + order + dt->descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';  // data 64-byte aligned, as numpy writes
  header += '\n';
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>((header.size() >> 8) & 0xff);
  bytes += header;
  bytes.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.nbytes()));
  return bytes;
}
}  // namespace

void save_npy(const std::string& path, const at::Tensor& t) { write_file_atomic(path, npy_bytes(t)); }

void save_npz(const std::string& path, const std::map<std::string, at::Tensor>& arrays) {
  // Built in memory (libzip's source buffer), then written atomically like every mixq output.
  std::vector<std::string> payloads;
  payloads.reserve(arrays.size());
  zip_error_t zerr;
  zip_error_init(&zerr);
  zip_source_t* mem = zip_source_buffer_create(nullptr, 0, 0, &zerr);
  MIXQ_CHECK(mem != nullptr, ErrorKind::kIO, path, ": cannot create a zip buffer");
  zip_t* z = zip_open_from_source(mem, ZIP_TRUNCATE, &zerr);
  if (!z) {
    zip_source_free(mem);
    throw Error(ErrorKind::kIO, path + ": cannot open a zip archive in memory");
  }
  zip_source_keep(mem);
  auto fail = [&](const std::string& why) {
    zip_discard(z);
    zip_source_free(mem);
    throw Error(ErrorKind::kIO, path + ": " + why);
  };
  for (const auto& [name, t] : arrays) {
    payloads.push_back(npy_bytes(t));
    zip_source_t* src = zip_source_buffer(z, payloads.back().data(), payloads.back().size(), 0);
    if (!src) fail("cannot add array '" + name + "'");
    if (zip_file_add(z, (name + ".npy").c_str(), src, ZIP_FL_OVERWRITE | ZIP_FL_ENC_UTF_8) < 0) {
      zip_source_free(src);
      fail("cannot add array '" + name + "'");
    }
  }
  if (zip_close(z) < 0) fail("cannot finish the zip archive");
  std::string bytes;
  if (zip_source_open(mem) == 0) {
    zip_source_seek(mem, 0, SEEK_END);
    zip_int64_t size = zip_source_tell(mem);
    zip_source_seek(mem, 0, SEEK_SET);
    bytes.resize(static_cast<size_t>(std::max<zip_int64_t>(size, 0)));
    zip_int64_t got = size > 0 ? zip_source_read(mem, bytes.data(), static_cast<zip_uint64_t>(size)) : 0;
    zip_source_close(mem);
    if (got != size) {
      zip_source_free(mem);
      throw Error(ErrorKind::kIO, path + ": cannot read back the zip archive");
    }
  }
  zip_source_free(mem);
  write_file_atomic(path, bytes);
}

std::map<std::string, at::Tensor> load_npz(const std::string& path) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &err);
  MIXQ_CHECK(z != nullptr, ErrorKind::kInvalidData, "cannot open '", path,
             "' as an .npz (zip) archive (libzip error ", err, ")");
  std::map<std::string, at::Tensor> out;
  std::error_code size_ec;
  const zip_uint64_t archive_bytes = std::filesystem::file_size(path, size_ec);
  try {
    zip_int64_t n = zip_get_num_entries(z, 0);
    for (zip_int64_t i = 0; i < n; ++i) {
      zip_stat_t st;
      MIXQ_CHECK(zip_stat_index(z, i, 0, &st) == 0, ErrorKind::kInvalidData, path,
                 ": unreadable archive entry ", i);
      std::string name = st.name;
      MIXQ_CHECK(st.size < (zip_uint64_t(1) << 34), ErrorKind::kInvalidData, path, ": entry '", name,
                 "' is too large");
      // The declared size is checked against what the archive can hold before the buffer for it is
      // allocated: stored entries are their compressed size, deflate expands at most ~1032:1.
      MIXQ_CHECK((st.valid & ZIP_STAT_SIZE) && (st.valid & ZIP_STAT_COMP_SIZE) && (st.valid & ZIP_STAT_COMP_METHOD),
                 ErrorKind::kInvalidData, path, ": entry '", name, "' has no size in the archive directory");
      const zip_uint64_t max_size =
          st.comp_method == ZIP_CM_STORE ? st.comp_size : st.comp_size * 1032 + 64;
      MIXQ_CHECK(st.size <= max_size && st.comp_size <= archive_bytes, ErrorKind::kInvalidData, path, ": entry '",
                 name, "' declares ", st.size, " bytes from ", st.comp_size, " stored in a ", archive_bytes,
                 "-byte archive (corrupt or crafted file)");
      std::string bytes(static_cast<size_t>(st.size), '\0');
      zip_file_t* f = zip_fopen_index(z, i, 0);
      MIXQ_CHECK(f != nullptr, ErrorKind::kInvalidData, path, ": cannot read entry '", name, "'");
      zip_int64_t got = zip_fread(f, bytes.data(), st.size);
      zip_fclose(f);
      MIXQ_CHECK(got == static_cast<zip_int64_t>(st.size), ErrorKind::kInvalidData, path,
                 ": entry '", name, "' is truncated or corrupt");
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0)
        name = name.substr(0, name.size() - 4);
      out[name] = parse_npy(bytes, path + ":" + name);
    }
  } catch (...) {
    zip_discard(z);
    throw;
  }
  zip_discard(z);
  return out;
}

}  // namespace mixq
