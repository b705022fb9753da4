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

struct CudaArray {
  std::uintptr_t ptr = 0;
  std::vector<py::ssize_t> shape;
  std::uintptr_t stream = 1;  // the producer's stream (mgfast::ProducerStreams)
};

// A device pointer from the __cuda_array_interface__ of a CuPy array, PyTorch tensor, pycuda
// array or Numba array, for a C-contiguous float32 array (writable when it is to be `written`),
// with the stream its producer queued its work on: the interface's "stream" (version 3; None: no
// synchronisation needed; 1 or 0: the legacy default stream; 2: the per-thread one), the legacy
// default stream where there is none (version 2).
CudaArray cuda_array(const py::object& a, const char* what, bool written,
                     const std::string& want = "<f4") {
  if (!py::hasattr(a, "__cuda_array_interface__"))
    throw std::invalid_argument(std::string(what) +
                                ": expected a GPU array exposing "
                                "__cuda_array_interface__ (CuPy, PyTorch, pycuda, Numba)");
  const py::dict iface = a.attr("__cuda_array_interface__");
  const std::string typestr = iface["typestr"].cast<std::string>();
  if (typestr != want)
    throw std::invalid_argument(std::string(what) + ": expected " +
                                (want == "<f4" ? "float32" : "uint32") + ", got typestr '" +
                                typestr + "'");
  const auto shape = iface["shape"].cast<std::vector<py::ssize_t>>();
  if (iface.contains("strides") && !iface["strides"].is_none()) {
    const auto strides = iface["strides"].cast<std::vector<py::ssize_t>>();
    py::ssize_t expect = 4;  // float32 and uint32 alike
    for (std::size_t i = shape.size(); i-- > 0;) {
      if (shape[i] > 1 && strides[i] != expect)
        throw std::invalid_argument(std::string(what) + ": must be C-contiguous");
      expect *= shape[i];
    }
  }
  const py::tuple data = iface["data"];
  if (written && data[1].cast<bool>())
    throw std::invalid_argument(std::string(what) + ": is read-only");
  CudaArray r{data[0].cast<std::uintptr_t>(), shape, 1};
  if (iface.contains("stream")) {
    const py::object st = iface["stream"];
    r.stream = st.is_none() ? mgfast::kNoProducerStream : st.cast<std::uintptr_t>();
    if (r.stream == 0 && !st.is_none()) r.stream = 1;  // 0 is ambiguous: the legacy stream
  }
  return r;
}

// GpuBackend::detect_device on device arrays: (flux, err or ivar, mask) of shape (n, kNPix), the
// last two optional (None); returns host arrays.
py::dict detect_device(mgfast::GpuBackend& self, const py::object& flux, const py::object& err,
                       const py::object& mask, bool err_is_ivar, std::uint32_t bad_bits,
                       const mgfast::pipeline::Options& o) {
  namespace grid = mgfast::grid;
  const CudaArray fa = cuda_array(flux, "flux", false);
  const auto& xs = fa.shape;
  mgfast::ProducerStreams producers{fa.stream};
  if (xs.size() != 2 || xs[1] != grid::kNPix)
    throw std::invalid_argument("flux: GPU arrays must be (n, " + std::to_string(grid::kNPix) +
                                "): spectra on the grid (preprocess others on the host)");
  mgfast::pipeline::Batch b;
  b.n_spec = as_int(xs[0], "flux");
  b.n_in = grid::kNPix;
  b.on_grid = true;
  b.flux = reinterpret_cast<const float*>(fa.ptr);
  const char* err_name = err_is_ivar ? "ivar" : "err";
  if (!err.is_none()) {
    const CudaArray e = cuda_array(err, err_name, false);
    if (e.shape != xs)
      throw std::invalid_argument(std::string(err_name) + ": shape differs from flux's");
    b.err = reinterpret_cast<const float*>(e.ptr);
    producers.push_back(e.stream);
    b.err_is_ivar = err_is_ivar;
  }
  if (!mask.is_none()) {
    const CudaArray k = cuda_array(mask, "mask", false, "<u4");
    if (k.shape != xs) throw std::invalid_argument("mask: shape differs from flux's");
    b.mask = reinterpret_cast<const std::uint32_t*>(k.ptr);
    producers.push_back(k.stream);
    b.bad_bits = bad_bits;
  }
  const py::ssize_t n = xs[0];
  const mgfast::net::Shape os = self.output_shape();
  py::array_t<float> out =
      self.map_output() ? py::array_t<float>({n, py::ssize_t(os.length), py::ssize_t(os.channels)})
                        : py::array_t<float>({n, py::ssize_t{2}});
  py::array_t<float> summary({self.has_summary() ? n : py::ssize_t{0}, py::ssize_t{2}});
  py::array_t<std::uint32_t> flags(n);
  py::array_t<std::int32_t> n_masked({n, py::ssize_t{grid::kNumArms}});
  py::array_t<float> snr(n);
  py::array_t<std::uint8_t> pixmask({n, py::ssize_t{grid::kNPix}});
  mgfast::DeviceDetectOutput d;
  d.out = out.mutable_data();
  d.summary = self.has_summary() ? summary.mutable_data() : nullptr;
  d.flags = flags.mutable_data();
  d.n_masked = n_masked.mutable_data();
  d.snr = snr.mutable_data();
  d.pixmask = pixmask.mutable_data();
  {
    py::gil_scoped_release release;
    self.detect_device(b, o, d, producers);
  }
  py::dict r;
  r["out"] = out;
  if (self.has_summary()) r["summary"] = summary;
  r["flags"] = flags;
  r["n_masked"] = n_masked;
  r["snr"] = snr;
  r["pixmask"] = pixmask;
  return r;
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
  gpu.def(py::init(
              [](int n_in, const std::vector<mgfast::net::Layer>& layers, const EngineOptions& o) {
                validate(o);
                if (o.device.rfind("cuda", 0) != 0)
                  throw std::invalid_argument(
                      "EngineOptions.device: the GPU engine runs on 'cuda' or "
                      "'cuda:N', got '" +
                      o.device + "'");
                const int device = cuda_index(o.device);
                if (o.precision != "fp32" && o.precision != "fp16")
                  throw std::invalid_argument(
                      "EngineOptions.precision: the GPU engine runs fp32 or "
                      "fp16, got '" +
                      o.precision + "'");
                mgfast::net::Network net = network_of(n_in, layers, o.channels);
                py::gil_scoped_release release;  // cuDNN's algorithm search takes a while
                return std::make_unique<GpuBackend>(std::move(net), device, o.batch_size,
                                                    o.precision == "fp16", o.slots, o.graphs);
              }),
          py::arg("n_in"), py::arg("layers"), py::arg("options"))
      .def(
          "infer_device",
          [](GpuBackend& self, const py::object& flux, const py::object& out) {
            const CudaArray fa = cuda_array(flux, "flux", false);
            const CudaArray oa = cuda_array(out, "out", true);
            const auto& xs = fa.shape;
            const auto& ys = oa.shape;
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
            self.infer_device(reinterpret_cast<const float*>(fa.ptr), xs[0],
                              reinterpret_cast<float*>(oa.ptr), {fa.stream, oa.stream});
          },
          py::arg("flux"), py::arg("out"))
      .def(
          "detect_device",
          [](GpuBackend& self, const py::object& flux, const py::object& err,
             const py::object& mask, bool err_is_ivar, std::uint32_t bad_bits, bool normalise,
             double min_pixel_good, double min_arm_good, double knot_spacing, double penalty,
             double clip_low, double clip_high, int grow, int max_iter, double sigma_floor,
             double spike_sigma) {
            return detect_device(
                self, flux, err, mask, err_is_ivar, bad_bits,
                preprocess_options(normalise, min_pixel_good, min_arm_good, knot_spacing, penalty,
                                   clip_low, clip_high, grow, max_iter, sigma_floor, spike_sigma));
          },
          py::arg("flux"), py::arg("err"), py::arg("mask"), py::arg("err_is_ivar"),
          py::arg("bad_bits"), py::arg("normalise"), py::arg("min_pixel_good"),
          py::arg("min_arm_good"), py::arg("knot_spacing"), py::arg("penalty"), py::arg("clip_low"),
          py::arg("clip_high"), py::arg("grow"), py::arg("max_iter"), py::arg("sigma_floor"),
          py::arg("spike_sigma"))
      .def(
          "profile",
          [](GpuBackend& self, const carray<float>& x) {
            check_flux(self, x);
            py::gil_scoped_release release;
            return self.profile(x.data(), x.shape(0));
          },
          py::arg("flux"))
      .def_property_readonly("device", &GpuBackend::device_index)
      .def_property_readonly("device_name", &GpuBackend::device_name)
      .def_property_readonly("slots", &GpuBackend::slots)
      .def_property_readonly("fp16", &GpuBackend::fp16)
      .def_property_readonly("graph_status", &GpuBackend::graph_status);
}
