// Bindings of the inference backends: CpuNetwork (oneDNN) built from mgfast.model's layer list.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "backend_cpu.hpp"
#include "bind.hpp"
#include "network.hpp"

namespace mgfast::bind {

namespace {

std::vector<float> floats(const py::object& a, std::size_t ndim, const std::string& what) {
  const auto arr = carray<float>::ensure(a);
  if (!arr || std::size_t(arr.ndim()) != ndim)
    throw std::invalid_argument(what + ": expected a " + std::to_string(ndim) + "-D float32 array");
  return std::vector<float>(arr.data(), arr.data() + arr.size());
}

// One layer from the tuple (kind, kernel, relu, weight, bias[, (stride, dilation, pad_l,
// pad_r)]) that mgfast.engine passes.
net::Layer layer_of(const py::handle& item, std::size_t index) {
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

}  // namespace

void bind_engine(py::module_& m) {
  m.attr("built_with_onednn") = onednn_available();
  m.def("onednn_version", &onednn_version);

  py::class_<CpuBackend>(m, "CpuNetwork")
      .def(py::init([](int n_in, const py::list& layers, int threads, int batch_size,
                       bool fast_conv) {
             net::Network net;
             net.n_in = n_in;
             for (std::size_t i = 0; i < layers.size(); ++i)
               net.layers.push_back(layer_of(layers[i], i));
             py::gil_scoped_release release;  // JIT-compiling the primitives takes a while
             return std::make_unique<CpuBackend>(std::move(net), threads, batch_size, fast_conv);
           }),
           py::arg("n_in"), py::arg("layers"), py::arg("threads"), py::arg("batch_size"),
           py::arg("fast_conv") = true)
      .def(
          "infer",
          [](CpuBackend& self, const carray<float>& x) {
            if (x.ndim() != 2 || x.shape(1) != self.n_in())
              throw std::invalid_argument("flux: expected shape (N, " +
                                          std::to_string(self.n_in()) + ")");
            const py::ssize_t n = x.shape(0);
            py::array_t<float> prob(n), lam(n);
            {
              py::gil_scoped_release release;
              self.infer(x.data(), n, prob.mutable_data(), lam.mutable_data());
            }
            return py::make_tuple(prob, lam);
          },
          py::arg("flux"))
      .def(
          "infer_map",
          [](CpuBackend& self, const carray<float>& x) {
            if (x.ndim() != 2 || x.shape(1) != self.n_in())
              throw std::invalid_argument("flux: expected shape (N, " +
                                          std::to_string(self.n_in()) + ")");
            const net::Shape o = self.output_shape();
            py::array_t<float> out({x.shape(0), py::ssize_t(o.length), py::ssize_t(o.channels)});
            {
              py::gil_scoped_release release;
              self.infer_map(x.data(), x.shape(0), out.mutable_data());
            }
            return out;
          },
          py::arg("flux"))
      .def_property_readonly("map_output", &CpuBackend::map_output)
      .def_property_readonly("n_in", &CpuBackend::n_in)
      .def_property_readonly("threads", &CpuBackend::threads)
      .def_property_readonly("batch_size", &CpuBackend::batch_size)
      .def_property_readonly("flops_per_spectrum", &CpuBackend::flops_per_sample);
}

}  // namespace mgfast::bind
