#include "pack/mxq_format.h"

#include <zlib.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "mixq/error.h"
#include "pack/bitpack.h"
#include "pack/byte_io.h"
#include "quant/rowwise_ref.h"

namespace mixq::pack {

namespace {

constexpr char kMagic[8] = {'M', 'I', 'X', 'Q', 'P', 'A', 'C', 'K'};
constexpr uint32_t kEndianMarker = 0x0A0B0C0D;
constexpr int64_t kMaxElems = int64_t(1) << 34;      // far above any model we run; stops overflow
constexpr uint32_t kMaxGraphBytes = 1u << 30;        // inflated graph section bound

// Product of dims, each >= 0 (or -1 when `allow_symbolic`), bounded so it never overflows.
int64_t checked_numel(const std::vector<int64_t>& dims, const std::string& where, const std::string& what) {
  MIXQ_CHECK(dims.size() <= 8, ErrorKind::kInvalidModel, where, ": ", what, " has rank ", dims.size(),
             " (at most 8 is supported)");
  int64_t n = 1;
  for (int64_t d : dims) {
    MIXQ_CHECK(d >= 0 && d <= kMaxElems, ErrorKind::kInvalidModel, where, ": ", what, " has dimension ", d);
    // Checked before multiplying: two dims under the bound can still overflow int64 (fuzzing
    // found 2^32 x (2^32 - 6)).
    MIXQ_CHECK(d == 0 || n <= kMaxElems / d, ErrorKind::kInvalidModel, where, ": ", what,
               " has too many elements (more than ", kMaxElems, ")");
    n *= d;
  }
  return n;
}

ElemType checked_type(uint8_t t, const std::string& where, const std::string& what) {
  MIXQ_CHECK(t == uint8_t(ElemType::kFloat32) || t == uint8_t(ElemType::kInt64), ErrorKind::kInvalidModel, where,
             ": ", what, " has element type code ", int(t), " (float32 = 1 and int64 = 7 are the ones .mxq holds)");
  return ElemType(t);
}

// Invariants of one quantized weight's declaration (before its data is read).
void check_qweight_decl(const QWeight& w, const std::string& where) {
  const std::string what = "quantized weight '" + w.tensor + "' of layer '" + w.node + "'";
  MIXQ_CHECK((w.bits >= 2 && w.bits <= 8) || w.bits == 16, ErrorKind::kInvalidModel, where, ": ", what, " has ",
             w.bits, " bits (2-8 or 16 expected)");
  checked_numel(w.dims, where, what);
  const int64_t rank = static_cast<int64_t>(w.dims.size());
  MIXQ_CHECK(uint8_t(w.granularity) <= 2, ErrorKind::kInvalidModel, where, ": ", what, " has granularity code ",
             int(w.granularity));
  MIXQ_CHECK(w.axis >= 0 && w.axis < std::max<int64_t>(rank, 1), ErrorKind::kInvalidModel, where, ": ", what,
             " has channel axis ", w.axis, " outside its rank ", rank);
  if (w.granularity == Gran::kPerGroup)
    MIXQ_CHECK(w.group_size >= 1, ErrorKind::kInvalidModel, where, ": ", what, " is per_group with group size ",
               w.group_size);
  MIXQ_CHECK(w.form <= 2, ErrorKind::kInvalidModel, where, ": ", what, " has table form ", int(w.form));
  if (w.form)
    MIXQ_CHECK(rank == 2 && w.granularity == Gran::kPerChannel && w.axis == 0 && !w.symmetric && w.bits <= 8,
               ErrorKind::kInvalidModel, where, ": ", what, " is a row-wise table (form ", int(w.form),
               ") but not an asymmetric per-row [rows, dim] weight of 2-8 bits");
}

void check_qweight_data(const QWeight& w, const std::string& where) {
  const std::string what = "quantized weight '" + w.tensor + "' of layer '" + w.node + "'";
  MIXQ_CHECK(static_cast<int64_t>(w.scales.size()) == w.num_params() &&
                 static_cast<int64_t>(w.zero_points.size()) == w.num_params(),
             ErrorKind::kInvalidModel, where, ": ", what, " has ", w.scales.size(), " scales and ",
             w.zero_points.size(), " zero points, its scheme needs ", w.num_params());
  for (size_t p = 0; p < w.scales.size(); ++p) {
    MIXQ_CHECK(std::isfinite(w.scales[p]) && w.scales[p] > 0, ErrorKind::kInvalidModel, where, ": ", what,
               " scale ", p, " is ", w.scales[p], " (must be finite and > 0)");
    MIXQ_CHECK(w.zero_points[p] >= w.qmin() && w.zero_points[p] <= w.qmax() && (!w.symmetric || w.zero_points[p] == 0),
               ErrorKind::kInvalidModel, where, ": ", what, " zero point ", p, " is ", w.zero_points[p],
               " outside [", w.qmin(), ", ", w.qmax(), "]");
  }
  const size_t rows = static_cast<size_t>(w.channels());
  MIXQ_CHECK(w.offsets.size() == (w.form == 1 ? rows : 0) && w.codebook.size() == (w.form == 2 ? rows << w.bits : 0),
             ErrorKind::kInvalidModel, where, ": ", what, " has ", w.offsets.size(), " offsets and ", w.codebook.size(),
             " centroids for table form ", int(w.form));
  for (float v : w.offsets) MIXQ_CHECK(std::isfinite(v), ErrorKind::kInvalidModel, where, ": ", what, " offset ", v);
  for (float v : w.codebook) MIXQ_CHECK(std::isfinite(v), ErrorKind::kInvalidModel, where, ": ", what, " centroid ", v);
  MIXQ_CHECK(w.packed.size() == packed_bytes(w.numel(), w.bits), ErrorKind::kInvalidModel, where, ": ", what,
             " holds ", w.packed.size(), " code bytes, ", w.numel(), " codes at ", w.bits, " bits need ",
             packed_bytes(w.numel(), w.bits));
}

void check_act(const QAct& a, const std::string& where) {
  MIXQ_CHECK((a.bits >= 2 && a.bits <= 8) || a.bits == 16, ErrorKind::kInvalidModel, where,
             ": activation quantizer of '", a.tensor, "' has ", a.bits, " bits");
  MIXQ_CHECK(std::isfinite(a.scale) && a.scale > 0 && a.zero_point >= a.qmin() && a.zero_point <= a.qmax() &&
                 a.zero_point == std::nearbyint(a.zero_point),
             ErrorKind::kInvalidModel, where, ": activation quantizer of '", a.tensor, "' has scale ", a.scale,
             " zero point ", a.zero_point);
}

void write_dims_type(ByteWriter& w, ElemType t, const std::vector<int64_t>& dims) {
  w.u8(uint8_t(t));
  w.i64s(dims);
}

// Files without row-wise tables are written as 1.0 (byte for byte what 1.0 writers made, readable
// by 1.0 readers); a table form needs 1.1, whose declarations carry the form byte.
uint16_t minor_needed(const PackedModel& m) {
  for (const auto& q : m.weights)
    if (q.form) return 1;
  return 0;
}

std::string write_graph(const PackedModel& m) {
  const bool forms = minor_needed(m) >= 1;
  ByteWriter w;
  w.u32(static_cast<uint32_t>(m.metadata.size()));
  for (const auto& [k, v] : m.metadata) { w.str(k); w.str(v); }
  for (const auto* list : {&m.inputs, &m.outputs}) {
    w.u32(static_cast<uint32_t>(list->size()));
    for (const auto& d : *list) { w.str(d.name); write_dims_type(w, d.dtype, d.dims); }
  }
  w.u32(static_cast<uint32_t>(m.nodes.size()));
  for (const auto& n : m.nodes) {
    w.str(n.name);
    w.str(n.op);
    w.u32(static_cast<uint32_t>(n.inputs.size()));
    for (const auto& s : n.inputs) w.str(s);
    w.u32(static_cast<uint32_t>(n.outputs.size()));
    for (const auto& s : n.outputs) w.str(s);
    w.u32(static_cast<uint32_t>(n.attrs.size()));
    for (const auto& [k, a] : n.attrs) {
      w.str(k);
      w.u8(a.type);
      switch (a.type) {
        case Attr::kInt: w.i64(a.i); break;
        case Attr::kFloat: w.f32(a.f); break;
        case Attr::kString: w.str(a.s); break;
        case Attr::kTensor: w.str(a.s); break;
        case Attr::kInts: w.i64s(a.ints); break;
        case Attr::kFloats: w.u32(static_cast<uint32_t>(a.floats.size())); for (float f : a.floats) w.f32(f); break;
      }
    }
  }
  w.u32(static_cast<uint32_t>(m.tensors.size()));
  for (const auto& t : m.tensors) { w.str(t.name); write_dims_type(w, t.dtype, t.dims); }
  w.u32(static_cast<uint32_t>(m.weights.size()));
  for (const auto& q : m.weights) {
    w.str(q.node);
    w.str(q.tensor);
    w.i64s(q.dims);
    w.u8(static_cast<uint8_t>(q.bits));
    w.u8(q.symmetric ? 1 : 0);
    w.u8(uint8_t(q.granularity));
    w.i64(q.axis);
    w.i64(q.group_size);
    if (forms) w.u8(q.form);
  }
  w.u32(static_cast<uint32_t>(m.acts.size()));
  for (const auto& a : m.acts) {
    w.str(a.tensor);
    w.u8(static_cast<uint8_t>(a.bits));
    w.u8(a.symmetric ? 1 : 0);
    w.f32(a.scale);
    w.f32(a.zero_point);
  }
  return std::move(w.buf());
}

void write_data(const PackedModel& m, ByteWriter& w) {
  for (const auto& t : m.tensors) {
    if (t.dtype == ElemType::kFloat32) for (float f : t.f) w.f32(f);
    else for (int64_t v : t.i) w.i64(v);
  }
  for (const auto& q : m.weights) {
    if (q.form == 1) {
      for (size_t r = 0; r < q.scales.size(); ++r) {
        w.u16(ref::fp16_bits(q.scales[r]));
        w.u16(ref::fp16_bits(q.offsets[r]));
      }
    } else if (q.form == 2) {
      for (float c : q.codebook) w.u16(ref::fp16_bits(c));
    }
    if (q.form) {
      w.bytes(q.packed.data(), q.packed.size());
      continue;
    }
    for (float s : q.scales) w.f32(s);
    if (!q.symmetric)
      for (int32_t z : q.zero_points) {
        if (q.bits <= 8) w.u8(static_cast<uint8_t>(z - q.qmin()));
        else w.u16(static_cast<uint16_t>(z - q.qmin()));
      }
    w.bytes(q.packed.data(), q.packed.size());
  }
}

ValueDecl read_decl(ByteReader& r) {
  ValueDecl d;
  d.name = r.str("value name");
  d.dtype = checked_type(r.u8("value type"), r.where(), "value '" + d.name + "'");
  d.dims = r.i64s("value dims");
  return d;
}

PackedModel read_graph(ByteReader& r, uint16_t minor) {
  const std::string& where = r.where();
  PackedModel m;
  uint32_t nmeta = r.count("metadata count", 8);
  for (uint32_t i = 0; i < nmeta; ++i) {
    std::string k = r.str("metadata key");
    m.metadata[k] = r.str("metadata value");
  }
  for (auto* list : {&m.inputs, &m.outputs}) {
    uint32_t n = r.count("input/output count", 9);
    for (uint32_t i = 0; i < n; ++i) list->push_back(read_decl(r));
  }
  uint32_t nnodes = r.count("node count", 20);
  m.nodes.resize(nnodes);
  for (auto& n : m.nodes) {
    n.name = r.str("node name");
    n.op = r.str("node op");
    MIXQ_CHECK(!n.op.empty(), ErrorKind::kInvalidModel, where, ": node '", n.name, "' has no op type");
    uint32_t ni = r.count("node input count", 4);
    for (uint32_t i = 0; i < ni; ++i) n.inputs.push_back(r.str("node input"));
    uint32_t no = r.count("node output count", 4);
    for (uint32_t i = 0; i < no; ++i) n.outputs.push_back(r.str("node output"));
    uint32_t na = r.count("node attribute count", 6);
    for (uint32_t i = 0; i < na; ++i) {
      std::string k = r.str("attribute name");
      Attr a;
      uint8_t t = r.u8("attribute type");
      MIXQ_CHECK(t >= 1 && t <= 6, ErrorKind::kInvalidModel, where, ": node '", n.name, "' attribute '", k,
                 "' has type code ", int(t));
      a.type = Attr::Type(t);
      switch (a.type) {
        case Attr::kInt: a.i = r.i64("int attribute"); break;
        case Attr::kFloat: a.f = r.f32("float attribute"); break;
        case Attr::kString: a.s = r.str("string attribute"); break;
        case Attr::kTensor: a.s = r.str("tensor attribute"); break;
        case Attr::kInts: a.ints = r.i64s("ints attribute"); break;
        case Attr::kFloats: {
          uint32_t nf = r.count("floats attribute", 4);
          for (uint32_t j = 0; j < nf; ++j) a.floats.push_back(r.f32("floats attribute"));
          break;
        }
      }
      n.attrs[k] = std::move(a);
    }
  }
  uint32_t nt = r.count("tensor count", 9);
  m.tensors.resize(nt);
  for (auto& t : m.tensors) {
    t.name = r.str("tensor name");
    t.dtype = checked_type(r.u8("tensor type"), where, "tensor '" + t.name + "'");
    t.dims = r.i64s("tensor dims");
    checked_numel(t.dims, where, "tensor '" + t.name + "'");
  }
  uint32_t nw = r.count("quantized weight count", 30);
  m.weights.resize(nw);
  for (auto& q : m.weights) {
    q.node = r.str("weight layer name");
    q.tensor = r.str("weight name");
    q.dims = r.i64s("weight dims");
    q.bits = r.u8("weight bits");
    q.symmetric = r.u8("weight symmetric") != 0;
    q.granularity = Gran(r.u8("weight granularity"));
    q.axis = r.i64("weight axis");
    q.group_size = r.i64("weight group size");
    q.form = minor >= 1 ? r.u8("weight table form") : 0;
    check_qweight_decl(q, where);
  }
  uint32_t na = r.count("activation count", 14);
  m.acts.resize(na);
  for (auto& a : m.acts) {
    a.tensor = r.str("activation name");
    a.bits = r.u8("activation bits");
    a.symmetric = r.u8("activation symmetric") != 0;
    a.scale = r.f32("activation scale");
    a.zero_point = r.f32("activation zero point");
    check_act(a, where);
  }
  MIXQ_CHECK(r.left() == 0, ErrorKind::kInvalidModel, where, ": graph section has ", r.left(), " unread bytes");
  return m;
}

void read_data(ByteReader& r, PackedModel& m) {
  for (auto& t : m.tensors) {
    const int64_t n = t.numel();
    const std::string what = "data of tensor '" + t.name + "'";
    if (t.dtype == ElemType::kFloat32) {
      r.need(uint64_t(n) * 4, what.c_str());
      t.f.resize(n);
      for (auto& v : t.f) v = r.f32("tensor data");
    } else {
      r.need(uint64_t(n) * 8, what.c_str());
      t.i.resize(n);
      for (auto& v : t.i) v = r.i64("tensor data");
    }
  }
  for (auto& q : m.weights) {
    const int64_t np = q.num_params();
    const std::string what = "parameters of weight '" + q.tensor + "'";
    if (q.form) {
      const int64_t per_row = q.form == 1 ? 2 : (int64_t(1) << q.bits);
      r.need(uint64_t(np) * uint64_t(per_row) * 2, what.c_str());
      q.zero_points.assign(np, 0);
      if (q.form == 1) {
        q.scales.resize(np);
        q.offsets.resize(np);
        for (int64_t i = 0; i < np; ++i) {
          q.scales[i] = ref::fp16_value(r.u16("table scale"));
          q.offsets[i] = ref::fp16_value(r.u16("table offset"));
        }
      } else {
        q.scales.assign(np, 1.0f);
        q.codebook.resize(static_cast<size_t>(np * per_row));
        for (auto& c : q.codebook) c = ref::fp16_value(r.u16("table centroid"));
      }
      const size_t nb = packed_bytes(q.numel(), q.bits);
      const uint8_t* p = r.take(nb, ("codes of weight '" + q.tensor + "'").c_str());
      q.packed.assign(p, p + nb);
      check_qweight_data(q, r.where());
      continue;
    }
    r.need(uint64_t(np) * 4, what.c_str());
    q.scales.resize(np);
    for (auto& s : q.scales) s = r.f32("weight scale");
    q.zero_points.assign(np, 0);
    if (!q.symmetric)
      for (auto& z : q.zero_points)
        z = static_cast<int32_t>((q.bits <= 8 ? r.u8("weight zero point") : r.u16("weight zero point")) + q.qmin());
    const size_t nb = packed_bytes(q.numel(), q.bits);
    const uint8_t* p = r.take(nb, ("codes of weight '" + q.tensor + "'").c_str());
    q.packed.assign(p, p + nb);
    check_qweight_data(q, r.where());
  }
  MIXQ_CHECK(r.left() == 0, ErrorKind::kInvalidModel, r.where(), ": ", r.left(),
             " bytes after the last weight (corrupt file?)");
}

void put_header(std::string& out, uint16_t minor, uint64_t file_size, uint32_t crc, uint32_t graph_raw,
                uint32_t graph_stored) {
  ByteWriter h;
  h.bytes(kMagic, 8);
  h.u16(kVersionMajor);
  h.u16(minor);
  h.u32(kEndianMarker);
  h.u64(file_size);
  h.u32(crc);
  h.u32(graph_raw);
  h.u32(graph_stored);
  h.u32(0);
  MIXQ_ASSERT(h.buf().size() == kHeaderBytes);
  out.replace(0, kHeaderBytes, h.buf());
}

std::string deflate_graph(const std::string& graph) {
  uLongf cap = compressBound(graph.size());
  std::string z(cap, '\0');
  int rc = compress2(reinterpret_cast<Bytef*>(z.data()), &cap, reinterpret_cast<const Bytef*>(graph.data()),
                     graph.size(), 9);
  MIXQ_ASSERT(rc == Z_OK, "zlib compress2 failed: ", rc);
  z.resize(cap);
  return z;
}

// What write_data writes, counted from the declarations (read_data's layout).
uint64_t data_bytes(const PackedModel& m) {
  uint64_t n = 0;
  for (const auto& t : m.tensors) n += uint64_t(t.numel()) * (t.dtype == ElemType::kFloat32 ? 4 : 8);
  for (const auto& q : m.weights) {
    const uint64_t np = uint64_t(q.num_params());
    if (q.form) n += np * uint64_t(q.form == 1 ? 2 : (int64_t(1) << q.bits)) * 2;
    else n += np * 4 + (q.symmetric ? 0 : np * (q.bits <= 8 ? 1 : 2));
    n += packed_bytes(q.numel(), q.bits);
  }
  return n;
}

}  // namespace

const char* elem_type_name(ElemType t) { return t == ElemType::kFloat32 ? "float32" : "int64"; }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

int64_t QWeight::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

int64_t QWeight::channels() const {
  if (granularity == Gran::kPerTensor || dims.empty()) return 1;
  return dims[static_cast<size_t>(axis)];
}

int64_t QWeight::groups() const {
  if (granularity != Gran::kPerGroup) return 1;
  const int64_t kk = k();
  return kk == 0 ? 1 : (kk + group_size - 1) / group_size;
}

std::vector<int32_t> QWeight::codes() const {
  const int64_t n = numel();
  std::vector<uint16_t> u(static_cast<size_t>(n));
  unpack_bits(packed.data(), n, bits, u.data());
  std::vector<int32_t> q(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) q[i] = static_cast<int32_t>(u[i] + qmin());
  return q;
}

std::vector<float> QWeight::dequantize() const {
  // Parameter index of element i, as quant/qscheme.h's QLayout::param_index.
  const int64_t n = numel(), C = channels(), G = groups();
  int64_t inner = 1;
  if (granularity != Gran::kPerTensor)
    for (size_t d = static_cast<size_t>(axis) + 1; d < dims.size(); ++d) inner *= dims[d];
  const int64_t gs = granularity == Gran::kPerGroup ? group_size : std::max<int64_t>(k(), 1);
  const std::vector<int32_t> q = codes();
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t p = 0;
    if (granularity != Gran::kPerTensor) {
      const int64_t nn = i % inner, rest = i / inner, c = rest % C, o = rest / C;
      p = c * G + (o * inner + nn) / gs;
    }
    if (form == 1) x[i] = scales[p] * static_cast<float>(q[i]) + offsets[p];
    else if (form == 2) x[i] = codebook[static_cast<size_t>((p << bits) + q[i])];
    else x[i] = scales[p] * (static_cast<float>(q[i]) - static_cast<float>(zero_points[p]));
  }
  return x;
}

uint64_t mxq_file_size(const PackedModel& m) {
  for (const auto& q : m.weights) check_qweight_decl(q, "mxq_file_size");
  return kHeaderBytes + deflate_graph(write_graph(m)).size() + data_bytes(m);
}

std::string write_mxq(const PackedModel& m) {
  for (const auto& q : m.weights) { check_qweight_decl(q, "write_mxq"); check_qweight_data(q, "write_mxq"); }
  for (const auto& a : m.acts) check_act(a, "write_mxq");
  for (const auto& t : m.tensors)
    MIXQ_ASSERT((t.dtype == ElemType::kFloat32 ? t.f.size() : t.i.size()) == size_t(t.numel()), t.name);
  const std::string graph = write_graph(m);
  const std::string z = deflate_graph(graph);
  ByteWriter body;
  body.bytes(z.data(), z.size());
  write_data(m, body);
  std::string out(kHeaderBytes, '\0');
  out += body.buf();
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(out.data() + kHeaderBytes), out.size() - kHeaderBytes));
  put_header(out, minor_needed(m), out.size(), crc, static_cast<uint32_t>(graph.size()), static_cast<uint32_t>(z.size()));
  return out;
}

PackedModel read_mxq(const std::string& bytes, const std::string& where) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  ByteReader h(p, bytes.size(), where);
  // The magic first (when there are 8 bytes to compare), so a wrong file type is named as such.
  MIXQ_CHECK(bytes.size() < 8 || std::equal(kMagic, kMagic + 8, bytes.data()), ErrorKind::kInvalidModel, where,
             ": not a .mxq file (bad magic; make one with `mixq pack` or `mixq quantize --pack`)");
  h.need(kHeaderBytes, "the 40-byte header");
  h.take(8, "magic");
  const uint16_t major = h.u16("version"), minor = h.u16("version");
  const uint32_t endian = h.u32("endianness marker");
  MIXQ_CHECK(endian != 0x0D0C0B0A, ErrorKind::kInvalidModel, where,
             ": written big-endian; this mixq reads little-endian .mxq files only");
  MIXQ_CHECK(endian == kEndianMarker, ErrorKind::kInvalidModel, where, ": corrupt header (endianness marker 0x",
             std::hex, endian, ")");
  MIXQ_CHECK(major == kVersionMajor, ErrorKind::kInvalidModel, where, ": .mxq version ", major, ".", minor,
             " is not supported (this mixq reads version ", kVersionMajor, ".x); re-pack with this mixq");
  const uint64_t size = h.u64("file size");
  MIXQ_CHECK(size == bytes.size(), ErrorKind::kInvalidModel, where, ": file is ", bytes.size(),
             " bytes but its header says ", size, " (truncated or appended to; re-create it with `mixq pack`)");
  const uint32_t crc = h.u32("checksum");
  const uint32_t graph_raw = h.u32("graph size"), graph_stored = h.u32("graph size");
  MIXQ_CHECK(h.u32("reserved") == 0, ErrorKind::kInvalidModel, where, ": corrupt header (reserved field is not 0)");
  const uint32_t actual = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(p + kHeaderBytes), bytes.size() - kHeaderBytes));
  MIXQ_CHECK(actual == crc, ErrorKind::kInvalidModel, where, ": checksum mismatch (stored CRC-32 0x", std::hex, crc,
             ", computed 0x", actual, "): the file is corrupt; re-create it with `mixq pack`");
  MIXQ_CHECK(graph_raw <= kMaxGraphBytes, ErrorKind::kInvalidModel, where, ": graph section of ", graph_raw,
             " bytes is implausible");
  ByteReader body(p + kHeaderBytes, bytes.size() - kHeaderBytes, where);
  const uint8_t* gz = body.take(graph_stored, "graph section");
  // Deflate expands at most ~1032:1; a declared size beyond that is a lie, refused before the
  // buffer for it is allocated.
  MIXQ_CHECK(uint64_t(graph_raw) <= uint64_t(graph_stored) * 1032 + 64, ErrorKind::kInvalidModel, where,
             ": graph section declares ", graph_raw, " bytes inflated from ", graph_stored,
             " stored (more than deflate can expand): corrupt file");
  std::string graph(graph_raw, '\0');
  uLongf got = graph_raw;
  int rc = uncompress(reinterpret_cast<Bytef*>(graph.data()), &got, gz, graph_stored);
  MIXQ_CHECK(rc == Z_OK && got == graph_raw, ErrorKind::kInvalidModel, where,
             ": graph section does not inflate (zlib error ", rc, ", ", got, " of ", graph_raw, " bytes)");
  ByteReader gr(reinterpret_cast<const uint8_t*>(graph.data()), graph.size(), where);
  PackedModel m = read_graph(gr, minor);
  ByteReader dr(p + kHeaderBytes + graph_stored, bytes.size() - kHeaderBytes - graph_stored, where);
  read_data(dr, m);
  return m;
}

PackedModel load_mxq(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot open '", path, "' for reading");
  std::ostringstream ss;
  ss << f.rdbuf();
  MIXQ_CHECK(!f.bad(), ErrorKind::kIO, "cannot read '", path, "'");
  return read_mxq(ss.str(), path);
}

void save_mxq(const PackedModel& m, const std::string& path) { write_file_atomic(path, write_mxq(m)); }

MxqSizes mxq_sizes(const PackedModel& m, const std::string& bytes) {
  MxqSizes s;
  s.total = static_cast<int64_t>(bytes.size());
  s.header = kHeaderBytes;
  ByteReader h(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mxq");
  h.take(28, "header");
  h.u32("raw");
  s.graph = h.u32("graph");
  for (const auto& t : m.tensors) s.tensor_data += t.numel() * (t.dtype == ElemType::kFloat32 ? 4 : 8);
  for (const auto& q : m.weights) {
    s.weight_codes += static_cast<int64_t>(q.packed.size());
    s.weight_params += q.form == 1   ? q.num_params() * 4
                       : q.form == 2 ? q.num_params() * (int64_t(2) << q.bits)
                                     : q.num_params() * (4 + (q.symmetric ? 0 : (q.bits <= 8 ? 1 : 2)));
  }
  return s;
}

}  // namespace mixq::pack
