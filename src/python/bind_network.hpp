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

// Input channels from their codes (features::Kind, mgfast.model.INPUT_CHANNELS' indices); none:
// the flux alone.
inline features::Channels channels_of(const std::vector<int>& kinds) {
  features::Channels ch;
  if (kinds.empty()) return ch;
  if (kinds.size() > std::size_t(features::kMaxChannels))
    throw std::invalid_argument("channels: at most " + std::to_string(features::kMaxChannels));
  ch.count = static_cast<int>(kinds.size());
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    if (kinds[i] < 0 || kinds[i] >= features::kNumKinds)
      throw std::invalid_argument("channels: unknown channel code " + std::to_string(kinds[i]));
    ch.kind[i] = kinds[i];
  }
  return ch;
}

// The network of n_in input pixels, the given input channels (codes; empty: the flux) and the
// given layer list.
inline net::Network network_of(int n_in, const py::list& layers,
                               const std::vector<int>& channels = {}) {
  net::Network net;
  net.n_in = n_in;
  net.input = channels_of(channels);
  for (std::size_t i = 0; i < layers.size(); ++i) net.layers.push_back(layer_of(layers[i], i));
  return net;
}

// The calls both engines' bindings make, through the engine contract (mgfast::Engine,
// include/mgfast/engine.hpp), on spectra (N, n_in) with the GIL released while the engine works.
inline void check_flux(const Engine& e, py::ssize_t ndim, py::ssize_t cols) {
  if (ndim != 2 || cols != e.n_in())
    throw std::invalid_argument("flux: expected shape (N, " + std::to_string(e.n_in()) + ")");
}

inline void check_flux(const Engine& e, const carray<float>& x) {
  check_flux(e, x.ndim(), x.ndim() == 2 ? x.shape(1) : 0);
}

// The inverse variances beside flux x (None: none given), checked against x's shape: what a
// multi-channel network's feed reads (features.hpp).
struct Ivar {
  carray<float> a;
  bool given = false;
  const float* data() const { return given ? a.data() : nullptr; }
};

inline Ivar ivar_of(const py::object& ivar, const carray<float>& x) {
  Ivar out;
  if (ivar.is_none()) return out;
  out.a = carray<float>::ensure(ivar);
  if (!out.a || out.a.ndim() != 2 || out.a.shape(0) != x.shape(0) || out.a.shape(1) != x.shape(1))
    throw std::invalid_argument("ivar: expected a float32 array of flux's shape");
  out.given = true;
  return out;
}

// (probability, λ2796), each (N,).
inline py::tuple infer_arrays(Engine& e, const carray<float>& x, const py::object& ivar_obj) {
  check_flux(e, x);
  const Ivar ivar = ivar_of(ivar_obj, x);
  const py::ssize_t n = x.shape(0);
  py::array_t<float> prob(n), lam(n);
  {
    py::gil_scoped_release release;
    e.infer(EngineBatch{x.data(), ivar.data(), n},
            EngineOutput{prob.mutable_data(), lam.mutable_data(), nullptr, nullptr});
  }
  return py::make_tuple(prob, lam);
}

// The map (N, length, channels) and, with `dual`, the summary (N, 2) before it.
inline py::object infer_map_arrays(Engine& e, const carray<float>& x, bool dual,
                                   const py::object& ivar_obj) {
  check_flux(e, x);
  const Ivar ivar = ivar_of(ivar_obj, x);
  if (dual && !e.has_summary())
    throw std::invalid_argument("this network has no summary head: use infer_map");
  if (!e.map_output())
    throw std::logic_error("this network returns probability and λ2796: call infer");
  const Shape o = e.output_shape();
  const py::ssize_t n = x.shape(0);
  py::array_t<float> out({n, py::ssize_t(o.length), py::ssize_t(o.channels)});
  py::array_t<float> summary({dual ? n : py::ssize_t(0), py::ssize_t(2)});
  {
    py::gil_scoped_release release;
    e.infer(EngineBatch{x.data(), ivar.data(), n},
            EngineOutput{nullptr, nullptr, out.mutable_data(),
                         dual ? summary.mutable_data() : nullptr});
  }
  if (!dual) return std::move(out);
  return py::make_tuple(summary, out);
}

// infer, infer_map, infer_dual and the contract's properties, on any engine class T.
template <class T, class Class>
void def_engine_calls(Class& c) {
  c.def(
       "infer",
       [](T& e, const carray<float>& x, const py::object& ivar) {
         return infer_arrays(e, x, ivar);
       },
       py::arg("flux"), py::arg("ivar") = py::none())
      .def(
          "infer_map",
          [](T& e, const carray<float>& x, const py::object& ivar) {
            return infer_map_arrays(e, x, false, ivar);
          },
          py::arg("flux"), py::arg("ivar") = py::none())
      .def(
          "infer_dual",
          [](T& e, const carray<float>& x, const py::object& ivar) {
            return infer_map_arrays(e, x, true, ivar);
          },
          py::arg("flux"), py::arg("ivar") = py::none())
      .def_property_readonly("in_channels", [](const T& e) { return e.in_channels(); })
      .def_property_readonly("input_features", [](const T& e) { return e.input_features(); })
      .def_property_readonly("has_summary", [](const T& e) { return e.has_summary(); })
      .def_property_readonly("map_output", [](const T& e) { return e.map_output(); })
      .def_property_readonly("n_in", [](const T& e) { return e.n_in(); })
      .def_property_readonly("batch_size", [](const T& e) { return e.batch_size(); })
      .def_property_readonly("precision",
                             [](const T& e) { return std::string(precision_name(e.precision())); })
      .def_property_readonly("device_string", [](const T& e) { return e.device(); })
      .def_property_readonly("flops_per_spectrum", [](const T& e) { return e.flops_per_sample(); });
}

}  // namespace mgfast::bind
