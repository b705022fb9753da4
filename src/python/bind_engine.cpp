// Bindings of the CPU inference backend: CpuNetwork (oneDNN) built from mgfast.model's layer
// list (the GPU backend's module, src/gpu/bind_gpu.cpp, reads the same list).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "backend_cpu.hpp"
#include "bind.hpp"
#include "bind_network.hpp"
#include "gpu_emulator.hpp"
#include "network.hpp"

namespace mgfast::bind {

void bind_engine(py::module_& m) {
  m.attr("built_with_onednn") = onednn_available();
  m.def("onednn_version", &onednn_version);

  // The GPU engine's plan and arithmetic run on the CPU (tests on machines without a GPU).
  m.def(
      "emulate_gpu_plan",
      [](int n_in, const py::list& layers, const carray<float>& x) {
        const net::Network net = network_of(n_in, layers);
        if (x.ndim() != 2 || x.shape(1) != n_in)
          throw std::invalid_argument("flux: expected shape (N, " + std::to_string(n_in) + ")");
        std::vector<float> out, summary;
        {
          py::gil_scoped_release release;
          out = gpu::emulate(net, x.data(), x.shape(0), &summary);
        }
        const py::ssize_t n = x.shape(0);
        py::array_t<float> a({n, py::ssize_t(n > 0 ? out.size() / n : 0)});
        std::copy(out.begin(), out.end(), a.mutable_data());
        if (!net.has_summary()) return py::object(a);
        py::array_t<float> s({n, py::ssize_t(2)});
        std::copy(summary.begin(), summary.end(), s.mutable_data());
        return py::object(py::make_tuple(s, a));
      },
      py::arg("n_in"), py::arg("layers"), py::arg("flux"));

  py::class_<CpuBackend> cpu(m, "CpuNetwork");
  cpu.def(py::init([](int n_in, const py::list& layers, int threads, int batch_size, bool fast_conv,
                      bool bf16) {
            net::Network net = network_of(n_in, layers);
            py::gil_scoped_release release;  // JIT-compiling the primitives takes a while
            return std::make_unique<CpuBackend>(std::move(net), threads, batch_size, fast_conv,
                                                bf16);
          }),
          py::arg("n_in"), py::arg("layers"), py::arg("threads"), py::arg("batch_size"),
          py::arg("fast_conv") = true, py::arg("bf16") = false)
      .def_property_readonly("threads", &CpuBackend::threads);
  def_engine_calls<CpuBackend>(cpu);
}

}  // namespace mgfast::bind
