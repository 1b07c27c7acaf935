// Building small IR graphs by hand in tests.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace mixq {

// A float tensor value. Non-empty `dims` make it shaped (-1 = symbolic, named by `dim_names`,
// "" when not given); empty `dims` leave the shape unknown, as graph outputs often are.
inline ValueInfo float_value(const std::string& name, std::vector<int64_t> dims = {},
                             std::vector<std::string> dim_names = {}) {
  ValueInfo v;
  v.name = name;
  v.dtype = DType::kFloat;
  v.has_shape = !dims.empty();
  v.dim_names = dim_names.empty() ? std::vector<std::string>(dims.size(), "") : std::move(dim_names);
  v.dims = std::move(dims);
  return v;
}

// An empty opset-13 graph that reports itself as `source_path` in messages.
inline Graph new_graph(const std::string& source_path) {
  Graph g;
  g.source_path = source_path;
  g.opsets[""] = 13;
  return g;
}

inline Node make_node(const std::string& name, const std::string& op, std::vector<std::string> in,
                      std::vector<std::string> out, std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attrs = std::move(attrs);
  return n;
}

}  // namespace mixq
