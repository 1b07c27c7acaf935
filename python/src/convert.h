// NumPy arrays <-> libtorch tensors for the Python module. Arrays cross as buffers (anything with
// __array__ was turned into an ndarray on the Python side), copied into tensors mixq owns, so the
// job never depends on the caller keeping an array alive or unchanged.
#pragma once

#include <ATen/ATen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <map>
#include <string>

namespace mixq::py {

namespace pyb = pybind11;

// A tensor holding a copy of `a` (any strides); `what` names it in errors (unsupported dtype).
at::Tensor tensor_from_array(const pyb::array& a, const std::string& what);
// A new ndarray holding a copy of `t` (made contiguous).
pyb::array array_from_tensor(const at::Tensor& t);
// {name: ndarray} -> {name: tensor}.
std::map<std::string, at::Tensor> tensors_from_dict(const pyb::dict& d);

}  // namespace mixq::py
