// The layer list that mgfast.engine passes to the inference backends, as a net::Network: shared by
// mgfast._core (CpuNetwork) and mgfast._gpu (GpuNetwork).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "bind.hpp"
#include "network.hpp"

namespace mgfast::bind {

inline std::vector<float> floats(const py::object& a, std::size_t ndim, const std::string& what) {
  const auto arr = carray<float>::ensure(a);
  if (!arr || std::size_t(arr.ndim()) != ndim)
    throw std::invalid_argument(what + ": expected a " + std::to_string(ndim) + "-D float32 array");
  return std::vector<float>(arr.data(), arr.data() + arr.size());
}

// One layer from the tuple (kind, kernel, relu, weight, bias[, (stride, dilation, pad_l,
// pad_r)]) that mgfast.engine passes.
inline net::Layer layer_of(const py::handle& item, std::size_t index) {
  const auto t = py::reinterpret_borrow<py::tuple>(item);
  const std::string where = "layer " + std::to_string(index);
  if (t.size() != 5 && t.size() != 6)
    throw std::invalid_argument(where + ": expected (kind, kernel, relu, w, b[, geometry])");
  const auto kind = t[0].cast<std::string>();
  net::Layer l;
  l.kernel = t[1].cast<int>();
  l.relu = t[2].cast<bool>();
  if (t.size() == 6) {
    const auto g = t[5].cast<std::vector<int>>();
    if (g.size() != 4)
      throw std::invalid_argument(where + ": geometry is (stride, dilation, pl, pr)");
    l.stride = g[0];
    l.dilation = g[1];
    l.pad_l = g[2];
    l.pad_r = g[3];
  }
  if (kind == "avgpool1d") {
    l.kind = net::LayerKind::kAvgPool1d;
  } else if (kind == "affine" || kind == "heatmap") {
    l.kind = kind == "affine" ? net::LayerKind::kAffine : net::LayerKind::kHeatmap;
    l.weight = floats(t[3], 1, where + " weight");
    l.bias = floats(t[4], 1, where + " bias");
    l.c_in = kind == "heatmap" ? static_cast<int>(l.weight.size() / 4) : 1;
    l.c_out = kind == "heatmap" ? 2 : 1;
  } else if (kind == "flatten") {
    l.kind = net::LayerKind::kFlatten;
  } else if (kind == "branch") {
    l.kind = net::LayerKind::kBranch;
  } else if (kind == "conv1d" || kind == "dense" || kind == "heads") {
    const bool conv = kind == "conv1d";
    l.kind = conv              ? net::LayerKind::kConv1d
             : kind == "dense" ? net::LayerKind::kDense
                               : net::LayerKind::kHeads;
    const auto w = carray<float>::ensure(t[3]);
    if (!w || w.ndim() != (conv ? 3 : 2))
      throw std::invalid_argument(where + ": weight must be " +
                                  (conv ? "(c_out, c_in, kernel)" : "(n_out, n_in)"));
    l.c_out = as_int(w.shape(0), "weight");
    l.c_in = as_int(w.shape(1), "weight");
    if (conv) l.kernel = as_int(w.shape(2), "weight");
    l.weight.assign(w.data(), w.data() + w.size());
    l.bias = floats(t[4], 1, where + " bias");
  } else {
    throw std::invalid_argument(where + ": unknown kind '" + kind + "'");
  }
  return l;
}

// The network of n_in input pixels and the given layer list.
inline net::Network network_of(int n_in, const py::list& layers) {
  net::Network net;
  net.n_in = n_in;
  for (std::size_t i = 0; i < layers.size(); ++i) net.layers.push_back(layer_of(layers[i], i));
  return net;
}

}  // namespace mgfast::bind
