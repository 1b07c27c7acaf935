// Building small IR graphs by hand in tests.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace mixq {

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
