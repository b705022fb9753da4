// Bindings of the CPU inference backend: CpuNetwork (oneDNN) built from mgfast.model's layer
// list (the GPU backend's module, src/python/gpu/bind_gpu.cpp, reads the same list).
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
#include "features.hpp"
#include "gpu_emulator.hpp"
#include "network.hpp"
#include "parallel.hpp"

namespace mgfast::bind {

void bind_engine(py::module_& m) {
  m.attr("built_with_onednn") = onednn_available();
  bind_layer_and_options(m);  // first: the signatures below name these types
  m.def("onednn_version", &onednn_version);

  // The GPU engine's plan and arithmetic run on the CPU (tests on machines without a GPU).
  // The network's input channels (features.hpp) of spectra flux, ivar (N, L): (N, C, L), or
  // (N, L, C) channels-last; mgfast.model.input_features.
  m.def(
      "input_features",
      [](const carray<float>& flux, const carray<float>& ivar, const std::vector<int>& kinds,
         bool channels_last, int threads) {
        const features::Channels ch = channels_of(kinds);
        if (flux.ndim() != 2 || ivar.ndim() != 2 || ivar.shape(0) != flux.shape(0) ||
            ivar.shape(1) != flux.shape(1))
          throw std::invalid_argument("flux, ivar: expected two (N, L) arrays of one shape");
        const py::ssize_t n = flux.shape(0), len = flux.shape(1);
        const int c = ch.count;
        py::array_t<float> out(channels_last ? std::vector<py::ssize_t>{n, len, c}
                                             : std::vector<py::ssize_t>{n, c, len});
        const float* f = flux.data();
        const float* iv = ivar.data();
        float* o = out.mutable_data();
        const int l = as_int(len, "flux");
        {
          py::gil_scoped_release release;
          parallel_for(n, resolve_threads(threads), 16,
                       [&](std::int64_t begin, std::int64_t end, int) {
                         for (std::int64_t i = begin; i < end; ++i)
                           features::fill(ch, f + i * l, iv + i * l, l, channels_last,
                                          o + i * std::int64_t(l) * c);
                       });
        }
        return out;
      },
      py::arg("flux"), py::arg("ivar"), py::arg("channels"), py::arg("channels_last") = false,
      py::arg("threads") = 0);

  m.def(
      "emulate_gpu_plan",
      [](int n_in, const std::vector<net::Layer>& layers, const carray<float>& x,
         const py::object& ivar_obj, const std::vector<int>& channels) {
        const net::Network net = network_of(n_in, layers, channels);
        if (x.ndim() != 2 || x.shape(1) != n_in)
          throw std::invalid_argument("flux: expected shape (N, " + std::to_string(n_in) + ")");
        const Ivar ivar = ivar_of(ivar_obj, x);
        std::vector<float> out, summary;
        {
          py::gil_scoped_release release;
          out = gpu::emulate(net, x.data(), x.shape(0), &summary, ivar.data());
        }
        const py::ssize_t n = x.shape(0);
        py::array_t<float> a({n, py::ssize_t(n > 0 ? out.size() / n : 0)});
        std::copy(out.begin(), out.end(), a.mutable_data());
        if (!net.has_summary()) return py::object(a);
        py::array_t<float> s({n, py::ssize_t(2)});
        std::copy(summary.begin(), summary.end(), s.mutable_data());
        return py::object(py::make_tuple(s, a));
      },
      py::arg("n_in"), py::arg("layers"), py::arg("flux"), py::arg("ivar") = py::none(),
      py::arg("channels") = std::vector<int>{});

  py::class_<CpuBackend> cpu(m, "CpuNetwork");
  cpu.def(py::init([](int n_in, const std::vector<net::Layer>& layers, const EngineOptions& o) {
            validate(o);
            if (o.device != "cpu")
              throw std::invalid_argument(
                  "EngineOptions.device: the CPU engine runs on 'cpu', "
                  "got '" +
                  o.device + "'");
            if (o.precision != "fp32" && o.precision != "bf16")
              throw std::invalid_argument(
                  "EngineOptions.precision: the CPU engine runs fp32 or "
                  "bf16, got '" +
                  o.precision + "'");
            net::Network net = network_of(n_in, layers, o.channels);
            py::gil_scoped_release release;  // JIT-compiling the primitives takes a while
            return std::make_unique<CpuBackend>(std::move(net), o.threads, o.batch_size,
                                                o.fast_conv, o.precision == "bf16");
          }),
          py::arg("n_in"), py::arg("layers"), py::arg("options"))
      .def_property_readonly("threads", &CpuBackend::threads);
  def_engine_calls<CpuBackend>(cpu);
}

}  // namespace mgfast::bind
