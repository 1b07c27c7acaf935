#include "exec/kernel.h"

#include <algorithm>

namespace mixq {

std::string NodeInfo::where() const {
  return graph_.source_path.empty() ? graph_.describe(node_)
                                    : graph_.source_path + ": " + graph_.describe(node_);
}

void NodeInfo::fail(const std::string& msg, ErrorKind kind) const {
  throw Error(kind, where() + ": " + msg);
}

const at::Tensor* NodeInfo::constant_input(size_t i) const {
  if (!has_input(i)) return nullptr;
  auto it = graph_.initializers.find(node_.inputs[i]);
  return it == graph_.initializers.end() ? nullptr : &it->second;
}

const Attribute& NodeInfo::typed_attr(const std::string& name, AttrType type) const {
  const Attribute* a = node_.attr(name);
  MIXQ_ASSERT(a != nullptr);
  if (a->type != type) fail("attribute '" + name + "' has the wrong type");
  return *a;
}

int64_t NodeInfo::get_int(const std::string& name, int64_t dflt) const {
  return has_attr(name) ? typed_attr(name, AttrType::kInt).i : dflt;
}
int64_t NodeInfo::req_int(const std::string& name) const {
  if (!has_attr(name)) fail("required attribute '" + name + "' is missing");
  return typed_attr(name, AttrType::kInt).i;
}
float NodeInfo::get_float(const std::string& name, float dflt) const {
  return has_attr(name) ? typed_attr(name, AttrType::kFloat).f : dflt;
}
std::string NodeInfo::get_string(const std::string& name, const std::string& dflt) const {
  return has_attr(name) ? typed_attr(name, AttrType::kString).s : dflt;
}
std::vector<int64_t> NodeInfo::get_ints(const std::string& name, std::vector<int64_t> dflt) const {
  return has_attr(name) ? typed_attr(name, AttrType::kInts).ints : dflt;
}
std::vector<float> NodeInfo::get_floats(const std::string& name, std::vector<float> dflt) const {
  return has_attr(name) ? typed_attr(name, AttrType::kFloats).floats : dflt;
}
at::Tensor NodeInfo::get_tensor(const std::string& name) const {
  return has_attr(name) ? typed_attr(name, AttrType::kTensor).t : at::Tensor();
}

const OpRow* find_op(const std::string& op_type, int64_t opset) {
  for (const auto& row : op_table())
    if (op_type == row.op_type && opset >= row.since && opset <= row.until) return &row;
  return nullptr;
}

bool op_known(const std::string& op_type) {
  const auto& t = op_table();
  return std::any_of(t.begin(), t.end(), [&](const OpRow& r) { return op_type == r.op_type; });
}

}  // namespace mixq
