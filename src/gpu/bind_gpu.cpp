// mgfast._gpu: the GPU inference backend (cuDNN + cuBLAS), a module of its own so that mgfast._core
// imports on machines without cuDNN; mgfast.engine imports this one only for backend="cuda".
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "backend_gpu.hpp"
#include "bind.hpp"
#include "bind_network.hpp"

namespace mgfast::bind {

namespace {

// A device pointer from the __cuda_array_interface__ of a CuPy array, PyTorch tensor, pycuda
// array or Numba array: (pointer, shape), for a C-contiguous float32 array (writable when it is
// to be `written`).
std::pair<std::uintptr_t, std::vector<py::ssize_t>> cuda_array(const py::object& a,
                                                               const char* what, bool written) {
  if (!py::hasattr(a, "__cuda_array_interface__"))
    throw std::invalid_argument(std::string(what) +
                                ": expected a GPU array exposing "
                                "__cuda_array_interface__ (CuPy, PyTorch, pycuda, Numba)");
  const py::dict iface = a.attr("__cuda_array_interface__");
  const std::string typestr = iface["typestr"].cast<std::string>();
  if (typestr != "<f4")
    throw std::invalid_argument(std::string(what) + ": expected float32, got typestr '" + typestr +
                                "'");
  const auto shape = iface["shape"].cast<std::vector<py::ssize_t>>();
  if (iface.contains("strides") && !iface["strides"].is_none()) {
    const auto strides = iface["strides"].cast<std::vector<py::ssize_t>>();
    py::ssize_t expect = 4;
    for (std::size_t i = shape.size(); i-- > 0;) {
      if (shape[i] > 1 && strides[i] != expect)
        throw std::invalid_argument(std::string(what) + ": must be C-contiguous");
      expect *= shape[i];
    }
  }
  const py::tuple data = iface["data"];
  if (written && data[1].cast<bool>())
    throw std::invalid_argument(std::string(what) + ": is read-only");
  return {data[0].cast<std::uintptr_t>(), shape};
}

}  // namespace

}  // namespace mgfast::bind

PYBIND11_MODULE(_gpu, m) {
  namespace py = pybind11;
  using mgfast::GpuBackend;
  using mgfast::GpuStageTimes;
  using namespace mgfast::bind;
  m.doc() = "mgfast's GPU inference backend (cuDNN + cuBLAS)";
  m.def("library_versions", &GpuBackend::library_versions);

  py::class_<GpuStageTimes>(m, "GpuStageTimes")
      .def_readonly("h2d_ms", &GpuStageTimes::h2d_ms)
      .def_readonly("compute_ms", &GpuStageTimes::compute_ms)
      .def_readonly("d2h_ms", &GpuStageTimes::d2h_ms)
      .def_readonly("batches", &GpuStageTimes::batches);

  py::class_<GpuBackend> gpu(m, "GpuNetwork");
  def_engine_calls<GpuBackend>(gpu);
  gpu.def(py::init([](int n_in, const py::list& layers, int device, int batch_size, bool fp16,
                      int slots, bool graphs) {
            mgfast::net::Network net = network_of(n_in, layers);
            py::gil_scoped_release release;  // cuDNN's algorithm search takes a while
            return std::make_unique<GpuBackend>(std::move(net), device, batch_size, fp16, slots,
                                                graphs);
          }),
          py::arg("n_in"), py::arg("layers"), py::arg("device"), py::arg("batch_size"),
          py::arg("fp16"), py::arg("slots") = 3, py::arg("graphs") = true)
      .def(
          "infer_device",
          [](GpuBackend& self, const py::object& flux, const py::object& out) {
            const auto [x, xs] = cuda_array(flux, "flux", false);
            const auto [y, ys] = cuda_array(out, "out", true);
            check_flux(self, py::ssize_t(xs.size()), xs.size() == 2 ? xs[1] : 0);
            const mgfast::net::Shape o = self.output_shape();
            const std::vector<py::ssize_t> want =
                self.map_output() ? std::vector<py::ssize_t>{xs[0], o.length, o.channels}
                                  : std::vector<py::ssize_t>{xs[0], 2};
            if (ys != want)
              throw std::invalid_argument("out: expected shape (" + std::to_string(want[0]) + ", " +
                                          std::to_string(want[1]) +
                                          (want.size() == 3 ? ", " + std::to_string(want[2]) : "") +
                                          ")");
            py::gil_scoped_release release;
            self.infer_device(reinterpret_cast<const float*>(x), xs[0],
                              reinterpret_cast<float*>(y));
          },
          py::arg("flux"), py::arg("out"))
      .def(
          "profile",
          [](GpuBackend& self, const carray<float>& x) {
            check_flux(self, x);
            py::gil_scoped_release release;
            return self.profile(x.data(), x.shape(0));
          },
          py::arg("flux"))
      .def_property_readonly("device", &GpuBackend::device)
      .def_property_readonly("device_name", &GpuBackend::device_name)
      .def_property_readonly("slots", &GpuBackend::slots)
      .def_property_readonly("fp16", &GpuBackend::fp16)
      .def_property_readonly("graph_status", &GpuBackend::graph_status);
}
