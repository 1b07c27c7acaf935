#include "quant/methods/recon_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "mixq/error.h"

namespace mixq {

namespace {

constexpr const char* kFormat = "mixq-recon-checkpoint";
constexpr int kVersion = 1;

// FNV-1a over bytes: the key only has to tell jobs apart, not resist an adversary.
struct Hasher {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) {
      h ^= b[i];
      h *= 1099511628211ull;
    }
  }
  void str(const std::string& s) {
    const uint64_t n = s.size();
    bytes(&n, sizeof n);
    bytes(s.data(), s.size());
  }
  void tensor(const at::Tensor& t) {
    if (!t.defined()) return str("<undefined>");
    at::Tensor c = t.contiguous();
    str(std::string(c.dtype().name()));
    for (int64_t d : c.sizes()) bytes(&d, sizeof d);
    bytes(c.data_ptr(), c.numel() * c.element_size());
  }
  std::string hex() const {
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
    return out;
  }
};

std::string make_key(const MethodContext& ctx, const std::string& method, const nlohmann::json& settings) {
  Hasher h;
  h.str(method);
  h.str(settings.dump());
  // The plan's layers (schemes, bits, ranges, pinning) and cost; not how the allocator got there
  // (its report may differ between runs that reach the same plan) nor the model's path (its
  // weights are hashed below; a moved model is the same model).
  nlohmann::json pj = plan_to_json(ctx.plan);
  for (const char* k : {"model", "search", "search_params", "budget"}) pj.erase(k);
  h.str(pj.dump());
  h.str(ctx.calib.describe());
  for (const auto& [name, t] : ctx.prepared.initializers) {
    h.str(name);
    h.tensor(t);
  }
  for (const auto& w : ctx.qm.weights) {
    h.str(w.weight);
    h.tensor(w.codes);
    h.tensor(w.params.scale);
    h.tensor(w.params.zero_point);
  }
  for (const auto& a : ctx.qm.activations) {
    h.str(a.tensor);
    h.tensor(a.params.scale);
    h.tensor(a.params.zero_point);
  }
  return h.hex();
}

}  // namespace

nlohmann::json tensor_to_json(const at::Tensor& t0) {
  at::Tensor t = t0.detach().contiguous().cpu();
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  return {{"dtype", static_cast<int>(t.scalar_type())},
          {"shape", t.sizes().vec()},
          {"data", nlohmann::json::binary_t(std::vector<uint8_t>(p, p + t.numel() * t.element_size()))}};
}


ReconCheckpoint::ReconCheckpoint(const MethodContext& ctx, const std::string& method, const nlohmann::json& settings)
    : path_(ctx.opts.checkpoint) {
  if (path_.empty()) return;
  key_ = make_key(ctx, method, settings);
  state_ = {{"format", kFormat}, {"version", kVersion}, {"key", key_}, {"method", method},
            {"phases", nlohmann::json::object()}, {"tensors", nlohmann::json::object()}};
  std::error_code ec;
  if (!ctx.opts.resume || !std::filesystem::exists(path_, ec)) return;
  std::ifstream f(path_, std::ios::binary);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot read the reconstruction checkpoint '", path_, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  const std::string bytes = ss.str();
  nlohmann::json j;
  try {
    j = nlohmann::json::from_cbor(bytes);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kIO, detail::concat("'", path_, "' is not a readable mixq reconstruction checkpoint (",
                                               e.what(), "); delete it or pass --no-resume to start over"));
  }
  MIXQ_CHECK(j.is_object() && j.value("format", "") == kFormat && j.value("version", 0) == kVersion &&
                 j.contains("phases") && j["phases"].is_object() && j.contains("tensors") && j["tensors"].is_object(),
             ErrorKind::kIO, "'", path_, "' is not a mixq reconstruction checkpoint of version ", kVersion,
             "; delete it or pass --no-resume to start over");
  MIXQ_CHECK(j.value("key", "") == key_, ErrorKind::kInvalidArgument, "the reconstruction checkpoint '", path_,
             "' was written by another job (method ", j.value("method", "?"), ", key ", j.value("key", "?"),
             "; this job's key is ", key_, ": the model, plan, calibration data or method settings differ); ",
             "delete it, pass --no-resume to start over, or --checkpoint another file");
  state_ = std::move(j);
  resumed_ = true;
  log::info("resuming " + method + " from " + path_);
}

int64_t ReconCheckpoint::next(const std::string& phase) const {
  if (!enabled() || !state_["phases"].contains(phase)) return 0;
  return state_["phases"][phase].value("next", int64_t(0));
}

nlohmann::json ReconCheckpoint::reports(const std::string& phase) const {
  if (!enabled() || !state_["phases"].contains(phase)) return nlohmann::json::array();
  return state_["phases"][phase].value("reports", nlohmann::json::array());
}

at::Tensor ReconCheckpoint::tensor(const std::string& name) const {
  const auto& ts = state_["tensors"];
  MIXQ_CHECK(ts.contains(name), ErrorKind::kIO, "the reconstruction checkpoint '", path_, "' lacks '", name,
             "'; delete it or pass --no-resume to start over");
  return tensor_from_json(ts[name], "the reconstruction checkpoint '" + path_ + "'", name);
}

at::Tensor tensor_from_json(const nlohmann::json& j, const std::string& where, const std::string& name) {
  try {
    const auto type = static_cast<at::ScalarType>(j.at("dtype").get<int>());
    const auto shape = j.at("shape").get<std::vector<int64_t>>();
    const auto& data = j.at("data").get_binary();
    MIXQ_CHECK(type == at::kFloat || type == at::kByte || type == at::kLong || type == at::kInt, ErrorKind::kIO,
               where, " is corrupt: tensor '", name, "' has dtype code ",
               static_cast<int>(type), "; delete it or pass --no-resume");
    // Never trust the lengths: the bytes must be exactly what the shape and dtype declare, checked
    // before anything is allocated.
    uint64_t bytes = at::elementSize(type);
    bool ok = true;
    for (int64_t d : shape) {
      ok = ok && d >= 0 && (d == 0 || bytes <= data.size() / static_cast<uint64_t>(d));
      if (ok) bytes *= static_cast<uint64_t>(d);
    }
    MIXQ_CHECK(ok && bytes == data.size(), ErrorKind::kIO, where,
               " is corrupt: tensor '", name, "' holds ", data.size(), " bytes, not what its shape declares; ",
               "delete it or pass --no-resume");
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
    std::memcpy(t.data_ptr(), data.data(), data.size());
    return t;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kIO, detail::concat(where, " is corrupt at tensor '",
                                               name, "' (", e.what(), "); delete it or pass --no-resume"));
  }
}

void ReconCheckpoint::restore_generator(at::Generator& gen) const {
  if (!enabled() || !state_["tensors"].contains("rng")) return;
  gen.set_state(tensor("rng"));
}

void ReconCheckpoint::record(const std::string& phase, int64_t next, const std::map<std::string, at::Tensor>& tensors,
                             const nlohmann::json& reports, const at::Generator& gen) {
  if (!enabled()) return;
  for (const auto& [name, t] : tensors) state_["tensors"][name] = tensor_to_json(t);
  state_["tensors"]["rng"] = tensor_to_json(gen.get_state());
  state_["phases"][phase] = {{"next", next}, {"reports", reports}};
  std::vector<uint8_t> bytes = nlohmann::json::to_cbor(state_);
  write_file_atomic(path_, std::string(bytes.begin(), bytes.end()));
  set_resume_note("reconstruction progress saved in " + path_ + ": the same command resumes from it");
}

}  // namespace mixq
