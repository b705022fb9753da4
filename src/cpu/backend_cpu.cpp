// The oneDNN CPU backend: fp32 convolutions (channels-last, fused ReLU), average pooling and
// matmuls, weights reordered once to the layouts oneDNN picks for this CPU. Threads work side by
// side on chunks of spectra, each running oneDNN single-threaded (see Worker).
//
// Even-kernel convolutions use the 2-parallel fast FIR algorithm (below): three oneDNN
// convolutions of half the kernel on half-length signals replace one, 25 % fewer flops, with a
// few additions before and after. Only sums and differences are added, no divisions, so the
// result stays within fp32 rounding of the direct convolution.
#include "backend_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "features.hpp"
#include "grid.hpp"
#include "parallel.hpp"

#ifdef MGFAST_HAVE_ONEDNN
#include <omp.h>

#include "oneapi/dnnl/dnnl.hpp"
#endif

namespace mgfast {

#ifdef MGFAST_HAVE_ONEDNN

namespace {

using dnnl::memory;
using tag = memory::format_tag;
constexpr memory::data_type kF32 = memory::data_type::f32;

// oneDNN's GNU OpenMP build reads the calling thread's OpenMP thread count when it creates a
// primitive (to partition the work) and when it runs one; both must see the same count.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~OmpThreads() { omp_set_num_threads(saved_); }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

 private:
  int saved_;
};

// A 64-byte aligned, grow-only buffer (oneDNN's kernels like cache-line alignment).
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(p_); }
  float* data() const { return static_cast<float*>(p_); }
  std::size_t size() const { return size_; }
  // Returns whether the buffer moved.
  bool reserve(std::size_t bytes) {
    if (bytes <= size_) return false;
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    std::free(p_);
    p_ = p;
    size_ = rounded;
    return true;
  }

 private:
  void* p_ = nullptr;
  std::size_t size_ = 0;
};

// primitive_attr copies share one handle, so every primitive gets a fresh one.
dnnl::primitive_attr make_attr(bool relu) {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (relu) {
    dnnl::post_ops po;
    po.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    a.set_post_ops(po);
  }
  return a;
}

// --- 2-parallel fast FIR convolution -----------------------------------------------------
// A valid correlation y[l] = sum_{k<2T} h[k] x[l+k] splits into even and odd taps
// (he[t] = h[2t], ho[t] = h[2t+1]) and input phases (xe[j] = x[2j], xo[j] = x[2j+1]):
//   y[2m]   = (he * xe)[m] + (ho * xo)[m]                      = A[m] + B[m]
//   y[2m+1] = (he * xo)[m] + (ho * xe)[m+1]
//           = ((he + ho) * (xo + xe[.+1]))[m] - A[m+1] - B[m]  = D[m] - A[m+1] - B[m]
// with * a valid correlation of T taps. A, B and D are three convolutions over C channels of
// half the length and half the kernel: 3/4 of the direct cost. All arrays are channels-last.

// Length of the phase arrays (zero-padded) and of A, B, D for an input of length L, kernel 2T.
int ffa_phase_len(int length) { return (length + 2) / 2 + 1; }
int ffa_out_len(int length, int taps) { return ffa_phase_len(length) - taps + 1; }

// x (n, L, C) -> E = xe, O = xo, S = xo + xe[.+1], each (n, P, C), zero beyond the signal.
void ffa_split(const float* x, std::int64_t n, int length, int c, int p, float* e, float* o,
               float* s) {
#pragma omp parallel for collapse(2) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < p; ++j) {
      const float* xi = x + i * std::int64_t(length) * c;
      const std::int64_t at = (i * p + j) * std::int64_t(c);
      const float* x0 = 2 * j < length ? xi + std::int64_t(2 * j) * c : nullptr;
      const float* x1 = 2 * j + 1 < length ? xi + std::int64_t(2 * j + 1) * c : nullptr;
      const float* x2 = 2 * j + 2 < length ? xi + std::int64_t(2 * j + 2) * c : nullptr;
      for (int k = 0; k < c; ++k) {
        const float v1 = x1 ? x1[k] : 0.f;
        e[at + k] = x0 ? x0[k] : 0.f;
        o[at + k] = v1;
        s[at + k] = v1 + (x2 ? x2[k] : 0.f);
      }
    }
  }
}

// y from A, B, D (n, M, C), plus bias, ReLU, then the mean over `pool` consecutive outputs
// (1: none): out (n, Lo / pool, C).
void ffa_combine(const float* a, const float* b, const float* d, std::int64_t n, int m, int c,
                 int lo, const float* bias, bool relu, int pool, float* out) {
  const int lz = lo / pool;
  const float inv = 1.0f / float(pool);
#pragma omp parallel for collapse(2) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    for (int q = 0; q < lz; ++q) {
      float* oq = out + (i * lz + q) * std::int64_t(c);
      for (int r = 0; r < pool; ++r) {
        const int l = q * pool + r;
        const std::int64_t at = (i * m + l / 2) * std::int64_t(c);
        const float* ai = a + at;
        const float* bi = b + at;
        const float* di = d + at;
        const float* an = ai + c;  // A[m+1]
        for (int k = 0; k < c; ++k) {
          float y = (l % 2 == 0 ? ai[k] + bi[k] : di[k] - an[k] - bi[k]) + bias[k];
          if (relu) y = std::max(y, 0.0f);
          oq[k] = r == 0 ? y : oq[k] + y;
        }
      }
      if (pool > 1)
        for (int k = 0; k < c; ++k) oq[k] *= inv;
    }
  }
}

// The heatmap head on channels-last features f (n, len, c), writing (probability, λ2796) per
// spectrum into z: cell logits and offsets by 1x1 convolutions (weight rows 0 and 1), the "no
// absorber" logit from the channels' max and mean (row 2), a softmax over [cells, none], and
// the wavelength at pixel kernel * argmax + offset (offset clipped to its cell). The same
// decoding as training/decode.py, which the tests compare against ONNX Runtime.
void heatmap_decode(const float* f, std::int64_t n, int len, int c, const net::Layer& h, float* z) {
  const float* wc = h.weight.data();
  const float* wo = wc + c;
  const float* wn = wc + 2 * c;
  std::vector<double> logit(len), mx(c), mean(c);
  for (std::int64_t i = 0; i < n; ++i) {
    const float* fi = f + i * std::int64_t(len) * c;
    std::fill(mx.begin(), mx.end(), -1e300);
    std::fill(mean.begin(), mean.end(), 0.0);
    int best = 0;
    for (int l = 0; l < len; ++l) {
      const float* v = fi + std::int64_t(l) * c;
      double s = h.bias[0];
      for (int k = 0; k < c; ++k) {
        s += double(wc[k]) * v[k];
        mx[k] = std::max(mx[k], double(v[k]));
        mean[k] += v[k];
      }
      logit[l] = s;
      if (s > logit[best]) best = l;
    }
    double none = h.bias[2];
    for (int k = 0; k < c; ++k) none += double(wn[k]) * mx[k] + double(wn[c + k]) * mean[k] / len;
    const double m = std::max(logit[best], none);
    double denom = std::exp(none - m);
    for (int l = 0; l < len; ++l) denom += std::exp(logit[l] - m);
    const float* vb = fi + std::int64_t(best) * c;
    double off = h.bias[1];
    for (int k = 0; k < c; ++k) off += double(wo[k]) * vb[k];
    off = std::min(std::max(off, 0.0), h.kernel - 1e-3);
    const double pix = std::min(std::max(h.kernel * best + off, 0.0), grid::kNPix - 1.0);
    z[2 * i] = float(1.0 - std::exp(none - m) / denom);
    z[2 * i + 1] = float(grid::wavelength_of_pixel(pix));
  }
}

// Geometry of a convolution beyond the valid, stride-1 default.
struct Geometry {
  int stride = 1, dilation = 1, pad_l = 0, pad_r = 0;
};

// What the workers share: the network and its weights in the layouts oneDNN chose.
struct Shared {
  net::Network net;
  std::vector<net::Shape> shapes;
  bool fast_conv = true;
  bool bf16 = false;  // convolutions and pooling in bf16 (fp32 accumulation); the rest fp32
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};

  // Weights and biases reordered to the layouts primitives chose (a batch size of its own may
  // choose another layout): kParams entries per layer, filled by whichever worker needs them.
  enum Param { kWeight, kBias, kEven, kOdd, kSum, kParams };
  std::vector<std::vector<std::pair<memory::desc, memory>>> params;
  std::mutex params_mu;

  bool has_head() const {
    const net::Layer& l = net.layers[0];
    return !bf16 && net.flux_only() && net.layers.size() > 2 && l.kind == net::LayerKind::kConv1d &&
           l.stride == 1 && l.dilation == 1 && l.pad_l == 0 && l.pad_r == 0 &&
           net.layers[1].kind == net::LayerKind::kAvgPool1d;
  }
  bool use_ffa(const net::Layer& l) const {
    return fast_conv && !bf16 && l.kind == net::LayerKind::kConv1d && l.kernel % 2 == 0 &&
           l.kernel >= 4 && l.stride == 1 && l.dilation == 1 && l.pad_l == 0 && l.pad_r == 0;
  }

  // The layer's parameter `which` in layout md, reordered from the user layout at first use.
  memory param(int layer, Param which, const memory::desc& md) {
    std::lock_guard<std::mutex> lock(params_mu);
    auto& cache = params[kParams * layer + which];
    for (auto& [d, m] : cache)
      if (d == md) return m;
    const net::Layer& l = net.layers[layer];
    std::vector<float> derived;
    const std::vector<float>* v = which == kBias ? &l.bias : &l.weight;
    memory::desc user;
    if (l.kind != net::LayerKind::kConv1d) {  // matmul: weights (K = c_in, N = c_out) stored
      user = which == kBias ? memory::desc({1, l.c_out}, kF32, tag::ab)  // (c_out, c_in)
                            : memory::desc({l.c_in, l.c_out}, kF32, tag::ba);
    } else if (which == kBias) {
      user = memory::desc({l.c_out}, kF32, tag::x);
    } else if (which == kWeight) {
      user = memory::desc({l.c_out, l.c_in, l.kernel}, kF32, tag::oiw);
    } else {  // the fast FIR's even, odd or summed taps
      const int taps = l.kernel / 2;
      derived.resize(std::size_t(l.c_out) * l.c_in * taps);
      for (std::size_t oc = 0; oc < std::size_t(l.c_out) * l.c_in; ++oc)
        for (int t = 0; t < taps; ++t) {
          const float he = l.weight[oc * l.kernel + 2 * t],
                      ho = l.weight[oc * l.kernel + 2 * t + 1];
          derived[oc * taps + t] = which == kEven ? he : which == kOdd ? ho : he + ho;
        }
      v = &derived;
      user = memory::desc({l.c_out, l.c_in, taps}, kF32, tag::oiw);
    }
    memory src(user, eng, const_cast<float*>(v->data()));
    memory dst(md, eng);
    dnnl::stream s(eng);
    dnnl::reorder(src, dst).execute(s, src, dst);
    s.wait();
    cache.emplace_back(md, dst);
    return dst;
  }

  // Convolutions run channels-last (nwc), for which oneDNN 3.2 has its fastest kernels
  // (brgconv) and which needs no reorder between layers or before the flatten; a CPU without a
  // JIT kernel for nwc gets oneDNN's own choice of layout instead of the reference code.
  static Geometry geometry(const net::Layer& l) { return {l.stride, l.dilation, l.pad_l, l.pad_r}; }

  dnnl::convolution_forward::primitive_desc conv_pd(std::int64_t n, int c_in, int len, int c_out,
                                                    int kernel, bool relu, bool bias,
                                                    Geometry g = {}, bool any_layout = false) {
    const tag t = any_layout ? tag::any : tag::nwc;
    const int out_len = (len + g.pad_l + g.pad_r - g.dilation * (kernel - 1) - 1) / g.stride + 1;
    const auto dt = bf16 ? memory::data_type::bf16 : kF32;
    const memory::desc src({n, c_in, len}, dt, t), w({c_out, c_in, kernel}, dt, tag::any),
        dst({n, c_out, out_len}, dt, t);
    const auto prop = dnnl::prop_kind::forward_inference;
    const auto alg = dnnl::algorithm::convolution_direct;
    // oneDNN counts dilation from 0 (no gap), Keras and ONNX from 1.
    const memory::dims strides{g.stride}, dil{g.dilation - 1}, pl{g.pad_l}, pr{g.pad_r};
    const char* no_bf16 =
        "precision bf16: this CPU has no bf16 convolution kernels in oneDNN (they need "
        "AVX512-BF16 or AMX); use fp32";
    dnnl::convolution_forward::primitive_desc pd;
    try {
      pd = bias ? dnnl::convolution_forward::primitive_desc(
                      eng, prop, alg, src, w, memory::desc({c_out}, kF32, tag::any), dst, strides,
                      dil, pl, pr, make_attr(relu))
                : dnnl::convolution_forward::primitive_desc(eng, prop, alg, src, w, dst, strides,
                                                            dil, pl, pr, make_attr(relu));
    } catch (const dnnl::error&) {
      // Without AVX512-BF16 (e.g. AVX2-only CPUs) oneDNN 3.2 has no bf16 convolution at all.
      if (bf16) throw std::invalid_argument(no_bf16);
      throw;
    }
    const bool ref = std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
    if (!any_layout && ref) return conv_pd(n, c_in, len, c_out, kernel, relu, bias, g, true);
    if (bf16 && ref) throw std::invalid_argument(no_bf16);
    return pd;
  }
};

// One thread's share of the work: single-threaded oneDNN primitives for the chunk sizes it
// has seen and the buffers they run in. Workers run side by side on chunks of a call's spectra,
// so no thread waits for another between layers, a thread that the OS sets aside only delays
// its own chunks, and each spectrum's numbers never depend on the thread count.
struct Worker {
  using Param = Shared::Param;
  Shared& sh;
  dnnl::stream strm{sh.eng};

  // A oneDNN primitive with its arguments, or a function of our own.
  struct Step {
    dnnl::primitive prim;
    std::unordered_map<int, memory> args;
    std::function<void()> fn;
    void run(dnnl::stream& s) {
      if (fn)
        fn();
      else
        prim.execute(s, args);
    }
  };

  // The first convolution and the pooling after it, one spectrum at a time, so that its
  // output (1.6 MB for the paper's network) stays in cache: on a whole batch it went to memory
  // and back, which made the pair 2-3 times slower. Reads the caller's spectrum and writes the
  // pooled features into act[0], both re-pointed per spectrum.
  struct Head {
    std::vector<Step> steps;
    memory src, dst;
    std::size_t dst_floats = 0;
  };
  bool has_head = false;
  Head head;
  Buffer head_mid, head_scratch;

  // Everything after the head (or the whole network when it has none) for a chunk of n.
  struct Plan {
    std::vector<Step> steps;
    memory input;          // without a head: the caller's spectra, re-pointed per chunk
    int out_buf = 0;       // act[] holding the heads' (n, 2) output, or the map
    bool decoded = false;  // the output is already (probability, λ2796): a heatmap head
  };
  std::map<std::int64_t, Plan> plans;
  Buffer act[2];            // activations ping-pong between these
  Buffer phases, partials;  // fast FIR temporaries: E, O, S and A, B, D
  Buffer scratch;           // one scratchpad for all steps of a plan (they run one after another)
  Buffer summary;           // a branched network's heatmap output (n, 2)
  Buffer feed;              // a multi-channel network's input (n, n_in, C), made from flux, ivar

  explicit Worker(Shared& s) : sh(s) { has_head = sh.has_head() && build_head(); }

  // Returns false (no head) when this CPU has no fast channels-last kernel for the first layer.
  bool build_head() {
    const net::Layer& l = sh.net.layers[0];
    auto cpd = sh.conv_pd(1, 1, sh.net.n_in, l.c_out, l.kernel, l.relu, true);
    const memory::desc in({1, 1, sh.net.n_in}, kF32, tag::nwc);
    const net::Shape pooled = sh.shapes[2];
    const memory::desc out({1, pooled.channels, pooled.length}, kF32, tag::nwc);
    if (cpd.src_desc() != in) return false;
    const int k = sh.net.layers[1].kernel;
    dnnl::pooling_forward::primitive_desc ppd(
        sh.eng, dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_avg_exclude_padding,
        cpd.dst_desc(), out, {k}, {k}, {0}, {0}, {0}, make_attr(false));
    head_mid.reserve(cpd.dst_desc().get_size());
    head_scratch.reserve(std::max(
        {cpd.scratchpad_desc().get_size(), ppd.scratchpad_desc().get_size(), std::size_t{64}}));
    head.src = memory(in, sh.eng, DNNL_MEMORY_NONE);
    head.dst = memory(out, sh.eng, DNNL_MEMORY_NONE);
    head.dst_floats = out.get_size() / sizeof(float);
    const memory mid(cpd.dst_desc(), sh.eng, head_mid.data());
    Step conv{dnnl::convolution_forward(cpd),
              {{DNNL_ARG_SRC, head.src},
               {DNNL_ARG_WEIGHTS, sh.param(0, Shared::kWeight, cpd.weights_desc())},
               {DNNL_ARG_BIAS, sh.param(0, Shared::kBias, cpd.bias_desc())},
               {DNNL_ARG_DST, mid}},
              {}};
    Step pool{dnnl::pooling_forward(ppd), {{DNNL_ARG_SRC, mid}, {DNNL_ARG_DST, head.dst}}, {}};
    if (cpd.scratchpad_desc().get_size() > 0)
      conv.args[DNNL_ARG_SCRATCHPAD] = memory(cpd.scratchpad_desc(), sh.eng, head_scratch.data());
    if (ppd.scratchpad_desc().get_size() > 0)
      pool.args[DNNL_ARG_SCRATCHPAD] = memory(ppd.scratchpad_desc(), sh.eng, head_scratch.data());
    head.steps.push_back(std::move(conv));
    head.steps.push_back(std::move(pool));
    return true;
  }

  Plan build(std::int64_t n) {
    // First the primitives, to learn how much memory they need; then, once the buffers have
    // their final size, the steps that point into them (`makers`).
    const net::Network& net = sh.net;
    const dnnl::engine& eng = sh.eng;
    std::vector<std::function<Step()>> makers;
    std::size_t need[2] = {0, 0}, need_sp = 64, need_phases = 0, need_partials = 0,
                need_summary = 0;
    Plan plan;
    const int first = has_head ? 2 : 0;
    // The input: the caller's flux, or for a multi-channel network the channels the feed makes
    // from flux and ivar (run(), features.hpp), channels-last.
    const memory::desc user_in({n, net.in_channels(), net.n_in}, kF32, tag::nwc);
    plan.input = memory(user_in, eng, DNNL_MEMORY_NONE);
    memory::desc cur = user_in;
    int cur_buf = -1;  // -1: the caller's spectra
    if (first > 0) {   // the head leaves the pooled features in act[0], channels-last
      const net::Shape s = sh.shapes[first];
      cur = memory::desc({n, s.channels, s.length}, kF32, tag::nwc);
      cur_buf = 0;
      need[0] = std::size_t(n) * head.dst_floats * sizeof(float);
    }
    auto mem = [this, input = plan.input](const memory::desc& d, int buf) {
      return buf < 0 ? input : memory(d, sh.eng, act[buf].data());
    };
    // A primitive reading cur and writing dst into the other activation buffer.
    auto push = [&](dnnl::primitive prim, const memory::desc& dst, const memory::desc& sp,
                    int layer = -1, memory::desc w = {}, memory::desc b = {}) {
      const int to = cur_buf == 0 ? 1 : 0;
      need[to] = std::max(need[to], dst.get_size());
      need_sp = std::max(need_sp, sp.get_size());
      makers.push_back([=, this] {
        Step s{prim, {{DNNL_ARG_SRC, mem(cur, cur_buf)}, {DNNL_ARG_DST, mem(dst, to)}}, {}};
        if (sp.get_size() > 0) s.args[DNNL_ARG_SCRATCHPAD] = memory(sp, sh.eng, scratch.data());
        if (layer >= 0) {
          s.args[DNNL_ARG_WEIGHTS] = sh.param(layer, Shared::kWeight, w);
          if (b.get_ndims() > 0) s.args[DNNL_ARG_BIAS] = sh.param(layer, Shared::kBias, b);
        }
        return s;
      });
      cur = dst;
      cur_buf = to;
    };
    // Brings the activations into the layout the next primitive chose, when they differ.
    auto layout = [&](const memory::desc& want) {
      if (want == cur) return;
      dnnl::reorder::primitive_desc pd(eng, cur, eng, want, make_attr(false));
      push(dnnl::reorder(pd), want, pd.scratchpad_desc());
    };

    for (std::size_t i = first; i < net.layers.size(); ++i) {
      const net::Layer& l = net.layers[i];
      const net::Shape in = sh.shapes[i], out = sh.shapes[i + 1];
      switch (l.kind) {
        case net::LayerKind::kConv1d: {
          if (sh.use_ffa(l) && cur_buf >= 0) {
            const int taps = l.kernel / 2, p = ffa_phase_len(in.length);
            const int m = ffa_out_len(in.length, taps);
            auto pd = sh.conv_pd(n, l.c_in, p, l.c_out, taps, false, false);
            const memory::desc src({n, l.c_in, p}, kF32, tag::nwc);
            const memory::desc part({n, l.c_out, m}, kF32, tag::nwc);
            if (pd.src_desc() == src && pd.dst_desc() == part) {
              // A pooling right after is done while combining, on data still in cache.
              const bool pooled =
                  i + 1 < net.layers.size() && net.layers[i + 1].kind == net::LayerKind::kAvgPool1d;
              const int pool = pooled ? net.layers[i + 1].kernel : 1;
              const net::Shape z = sh.shapes[i + (pooled ? 2 : 1)];
              layout(memory::desc({n, in.channels, in.length}, kF32, tag::nwc));
              const memory::desc dst({n, z.channels, z.length}, kF32, tag::nwc);
              const int from = cur_buf, to = cur_buf == 0 ? 1 : 0;
              const std::size_t ph = src.get_size(), pa = part.get_size();
              need[to] = std::max(need[to], dst.get_size());
              need_sp = std::max(need_sp, pd.scratchpad_desc().get_size());
              need_phases = std::max(need_phases, 3 * ph);
              need_partials = std::max(need_partials, 3 * pa);
              const int li = int(i), len = in.length, lo = out.length, ci = l.c_in, co = l.c_out;
              const bool relu = l.relu;
              const std::size_t phf = ph / sizeof(float), paf = pa / sizeof(float);
              const memory::desc wd = pd.weights_desc(), sd = pd.scratchpad_desc();
              const dnnl::primitive conv = dnnl::convolution_forward(pd);
              makers.push_back([=, this] {
                const float* x = act[from].data();
                float* e = phases.data();
                return Step{{}, {}, [=] { ffa_split(x, n, len, ci, p, e, e + phf, e + 2 * phf); }};
              });
              for (Param w : {Shared::kEven, Shared::kOdd, Shared::kSum}) {
                const int k = w - Shared::kEven;
                makers.push_back([=, this] {
                  Step s{conv,
                         {{DNNL_ARG_SRC, memory(src, sh.eng, phases.data() + k * phf)},
                          {DNNL_ARG_WEIGHTS, sh.param(li, w, wd)},
                          {DNNL_ARG_DST, memory(part, sh.eng, partials.data() + k * paf)}},
                         {}};
                  if (sd.get_size() > 0)
                    s.args[DNNL_ARG_SCRATCHPAD] = memory(sd, sh.eng, scratch.data());
                  return s;
                });
              }
              makers.push_back([=, this] {
                const float* a = partials.data();
                float* y = act[to].data();
                const float* bias = sh.net.layers[li].bias.data();
                return Step{{}, {}, [=] {
                              ffa_combine(a, a + paf, a + 2 * paf, n, m, co, lo, bias, relu, pool,
                                          y);
                            }};
              });
              cur = dst;
              cur_buf = to;
              if (pooled) ++i;
              break;
            }
          }
          auto pd = sh.conv_pd(n, l.c_in, in.length, l.c_out, l.kernel, l.relu, true,
                               Shared::geometry(l));
          layout(pd.src_desc());
          push(dnnl::convolution_forward(pd), pd.dst_desc(), pd.scratchpad_desc(), int(i),
               pd.weights_desc(), pd.bias_desc());
          break;
        }
        case net::LayerKind::kAffine: {
          // A multi-channel network's feed applies the map to channel 0 as it makes the input.
          if (!net.flux_only()) break;
          // y = a x + b on the caller's spectra, into an activation buffer (channels-last with
          // one channel is the spectra's own layout).
          const memory::desc dst({n, 1, in.length}, kF32, tag::nwc);
          const int to = cur_buf == 0 ? 1 : 0;
          need[to] = std::max(need[to], dst.get_size());
          const float a = l.weight[0], b = l.bias[0];
          const std::int64_t count = n * std::int64_t(in.length);
          const memory input = plan.input;
          makers.push_back([=, this] {
            float* y = act[to].data();
            return Step{{}, {}, [=] {
                          const float* x = static_cast<const float*>(input.get_data_handle());
                          for (std::int64_t k = 0; k < count; ++k) y[k] = a * x[k] + b;
                        }};
          });
          cur = dst;
          cur_buf = to;
          break;
        }
        case net::LayerKind::kHeatmap: {
          layout(memory::desc({n, in.channels, in.length}, kF32, tag::nwc));
          const int li = int(i), c = in.channels, len = in.length;
          const int from = cur_buf;
          if (i + 1 < net.layers.size() && net.layers[i + 1].kind == net::LayerKind::kBranch) {
            // A summary beside the map: into a buffer of its own, the features left in place
            // for the layers after the branch.
            need_summary = std::max(need_summary, std::size_t(n) * 2 * sizeof(float));
            makers.push_back([=, this] {
              const float* f = act[from].data();
              float* z = summary.data();
              const net::Layer& h = sh.net.layers[li];
              return Step{{}, {}, [=, &h] { heatmap_decode(f, n, len, c, h, z); }};
            });
            break;
          }
          const int to = cur_buf == 0 ? 1 : 0;
          need[to] = std::max(need[to], std::size_t(n) * 2 * sizeof(float));
          makers.push_back([=, this] {
            const float* f = act[from].data();
            float* z = act[to].data();
            const net::Layer& h = sh.net.layers[li];
            return Step{{}, {}, [=, &h] { heatmap_decode(f, n, len, c, h, z); }};
          });
          cur = memory::desc({n, 2}, kF32, tag::ab);
          cur_buf = to;
          plan.decoded = true;
          break;
        }
        case net::LayerKind::kAvgPool1d: {
          // Valid pooling has no padding, so exclude/include padding are the same average.
          dnnl::pooling_forward::primitive_desc pd(
              eng, dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_avg_exclude_padding,
              cur, memory::desc({n, out.channels, out.length}, cur.get_data_type(), tag::any),
              {l.kernel}, {l.kernel}, {0}, {0}, {0}, make_attr(false));
          push(dnnl::pooling_forward(pd), pd.dst_desc(), pd.scratchpad_desc());
          break;
        }
        case net::LayerKind::kBranch:
          break;  // the heatmap above left its input where the next layer reads it
        case net::LayerKind::kFlatten:
          // In channels-last (nwc) layout a spectrum's features already lie in Keras' flatten
          // order, l * C + c: the flatten is a change of view, not of data.
          layout(memory::desc({n, in.channels, in.length}, kF32, tag::nwc));
          cur = memory::desc({n, in.channels * in.length}, kF32, tag::nc);
          break;
        case net::LayerKind::kDense:
        case net::LayerKind::kHeads: {
          // matmul rather than inner_product: oneDNN 3.2's inner product splits long reductions
          // across threads, which would make the sums depend on the thread count.
          // The heads' output stays plain (n, 2) so that it can be read back directly.
          const tag dst_tag = l.kind == net::LayerKind::kHeads ? tag::ab : tag::any;
          dnnl::matmul::primitive_desc pd(eng, memory::desc({n, l.c_in}, kF32, tag::any),
                                          memory::desc({l.c_in, l.c_out}, kF32, tag::any),
                                          memory::desc({1, l.c_out}, kF32, tag::ab),
                                          memory::desc({n, l.c_out}, kF32, dst_tag),
                                          make_attr(l.relu));
          layout(pd.src_desc());
          push(dnnl::matmul(pd), pd.dst_desc(), pd.scratchpad_desc(), int(i), pd.weights_desc(),
               pd.bias_desc());
          break;
        }
      }
    }

    if (net.map_output()) {  // the caller reads the map as (n, length, channels)
      const net::Shape o = sh.shapes.back();
      layout(memory::desc({n, o.channels, o.length}, kF32, tag::nwc));
    }
    // A bigger buffer invalidates the pointers of plans built before: drop them (oneDNN's
    // primitive cache makes rebuilding them cheap). The head keeps buffers of its own.
    bool moved = act[0].reserve(need[0]);
    moved = act[1].reserve(need[1]) || moved;
    moved = scratch.reserve(need_sp) || moved;
    moved = phases.reserve(need_phases) || moved;
    moved = partials.reserve(need_partials) || moved;
    moved = summary.reserve(need_summary) || moved;
    if (moved) plans.clear();
    for (auto& make : makers) plan.steps.push_back(make());
    plan.out_buf = cur_buf;
    return plan;
  }

  Plan& plan(std::int64_t n) {
    auto it = plans.find(n);
    if (it != plans.end()) return it->second;
    Plan p = build(n);
    return plans.emplace(n, std::move(p)).first->second;
  }

  // A multi-channel network's input for n spectra from their flux x and ivar (null: unknown,
  // read as masked), the first layer's affine map applied to the flux channel.
  const float* make_feed(const float* x, const float* ivar, std::int64_t n) {
    const net::Network& net = sh.net;
    const int c = net.in_channels(), len = net.n_in;
    const bool affine = net.layers[0].kind == net::LayerKind::kAffine;
    const float a = affine ? net.layers[0].weight[0] : 1.0f;
    const float b = affine ? net.layers[0].bias[0] : 0.0f;
    feed.reserve(std::size_t(n) * len * c * sizeof(float));
    for (std::int64_t j = 0; j < n; ++j)
      features::fill(net.input, x + j * len, ivar ? ivar + j * len : nullptr, len, true,
                     feed.data() + j * std::int64_t(len) * c, affine, a, b);
    return feed.data();
  }

  // n spectra (at most a chunk), on this thread only: (probability, λ2796) into prob and lam,
  // or for a network that returns a map, the map into prob (n × length × channels) and, for a
  // branched one, its summary into lam (n × 2: probability, λ2796). ivar: a multi-channel
  // network's (n, n_in) inverse variances, or null.
  void run(const float* x, const float* ivar, std::int64_t n, float* prob, float* lam) {
    const std::int64_t n_in = sh.net.n_in;
    Plan& p = plan(n);  // before the head: building a plan may move act[0]
    if (!sh.net.flux_only()) x = make_feed(x, ivar, n);
    if (has_head) {
      for (std::int64_t j = 0; j < n; ++j) {
        head.src.set_data_handle(const_cast<float*>(x + j * n_in));
        head.dst.set_data_handle(act[0].data() + j * head.dst_floats);
        for (Step& s : head.steps) s.run(strm);
      }
    } else {
      p.input.set_data_handle(const_cast<float*>(x));
    }
    for (Step& s : p.steps) s.run(strm);
    strm.wait();
    const float* z = act[p.out_buf].data();
    if (sh.net.map_output()) {
      const net::Shape o = sh.shapes.back();
      std::copy(z, z + n * std::int64_t(o.channels) * o.length, prob);
      if (lam && sh.net.has_summary()) std::copy(summary.data(), summary.data() + 2 * n, lam);
      return;
    }
    for (std::int64_t i = 0; i < n; ++i) {
      prob[i] = p.decoded ? z[2 * i] : 1.0f / (1.0f + std::exp(-z[2 * i]));
      lam[i] = p.decoded ? z[2 * i + 1] : std::max(z[2 * i + 1], 0.0f);
    }
  }
};

}  // namespace

struct CpuBackend::Impl {
  Shared sh;
  int threads = 1;
  int batch = 1;
  std::vector<std::unique_ptr<Worker>> workers;  // one per thread
  std::mutex mu;
};

CpuBackend::CpuBackend(net::Network network, int threads, int batch_size, bool fast_conv, bool bf16)
    : impl_(std::make_unique<Impl>()) {
  if (batch_size < 1) throw std::invalid_argument("batch_size: must be at least 1");
  if (threads < 0) throw std::invalid_argument("threads: must be 0 (all) or positive");
  Impl& m = *impl_;
  m.sh.shapes = network.shapes();
  m.sh.net = std::move(network);
  m.sh.fast_conv = fast_conv;
  m.sh.bf16 = bf16;
  m.sh.params.resize(Shared::kParams * m.sh.net.layers.size());
  m.threads = resolve_threads(threads);
  m.batch = batch_size;
  // Every worker runs oneDNN on one thread, and its primitives are made for one thread.
  OmpThreads one(1);
  for (int t = 0; t < m.threads; ++t) m.workers.push_back(std::make_unique<Worker>(m.sh));
  m.workers[0]->plan(batch_size);  // JIT the kernels now rather than in the first call
}

CpuBackend::~CpuBackend() = default;

namespace {

// Chunks of at most batch_size spectra, small enough for every thread to get one; which thread
// runs a chunk does not change its numbers (checked by the tests). out_per: floats per spectrum
// in `prob` (1 for the heads, the map's size for a map).
template <class Impl>
void run_chunks(Impl& m, const float* x, const float* ivar, std::int64_t n, float* prob, float* lam,
                std::int64_t out_per) {
  std::lock_guard<std::mutex> lock(m.mu);
  if (n <= 0) return;
  // The chunk size depends on n and the batch size only, never on the thread count: oneDNN's
  // AVX2 kernels round a spectrum's sums differently with its place in a chunk (the AVX-512 ones
  // do not), so chunks that followed the thread count made results depend on it. kSplit chunks
  // at most below n = kSplit · batch, enough for every thread of any machine mgfast runs on.
  constexpr std::int64_t kSplit = 16;
  const std::int64_t per = std::min<std::int64_t>(m.batch, (n + kSplit - 1) / kSplit);
  const std::int64_t n_in = m.sh.net.n_in;
  parallel_for((n + per - 1) / per, m.threads, 1,
               [&](std::int64_t begin, std::int64_t end, int worker) {
                 OmpThreads one(1);
                 for (std::int64_t c = begin; c < end; ++c) {
                   const std::int64_t s0 = c * per, nb = std::min(per, n - s0);
                   const std::int64_t lam_per = m.sh.net.has_summary() ? 2 : 1;
                   m.workers[worker]->run(x + s0 * n_in, ivar ? ivar + s0 * n_in : nullptr, nb,
                                          prob + s0 * out_per, lam ? lam + s0 * lam_per : nullptr);
                 }
               });
}

}  // namespace

void CpuBackend::infer(const EngineBatch& in, const EngineOutput& out) {
  const Impl& m = *impl_;
  if (!m.sh.net.map_output()) {
    if (!out.probability || !out.lambda2796)
      throw std::logic_error("this network returns probability and λ2796: give both outputs");
    run_chunks(*impl_, in.flux, in.ivar, in.n, out.probability, out.lambda2796, 1);
    return;
  }
  if (!out.map) throw std::logic_error("this network returns a map: give the map output");
  if (out.summary && !m.sh.net.has_summary())
    throw std::logic_error("this network has no summary head");
  const net::Shape o = m.sh.shapes.back();
  run_chunks(*impl_, in.flux, in.ivar, in.n, out.map, out.summary,
             std::int64_t(o.channels) * o.length);
}

bool CpuBackend::has_summary() const { return impl_->sh.net.has_summary(); }

bool CpuBackend::map_output() const { return impl_->sh.net.map_output(); }
net::Shape CpuBackend::output_shape() const { return impl_->sh.shapes.back(); }

int CpuBackend::n_in() const { return impl_->sh.net.n_in; }
std::vector<std::string> CpuBackend::input_features() const {
  return impl_->sh.net.input_features();
}
Precision CpuBackend::precision() const {
  return impl_->sh.bf16 ? Precision::kBf16 : Precision::kFp32;
}
int CpuBackend::threads() const { return impl_->threads; }
int CpuBackend::batch_size() const { return impl_->batch; }
double CpuBackend::flops_per_sample() const { return impl_->sh.net.flops_per_sample(); }

bool onednn_available() { return true; }

std::string onednn_version() {
  const dnnl::version_t* v = dnnl::version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

#else  // built without oneDNN: the class exists so that the bindings link, and says why not.

struct CpuBackend::Impl {};

CpuBackend::CpuBackend(net::Network, int, int, bool, bool) {
  throw std::runtime_error(
      "this mgfast was built without oneDNN, so it has no CPU inference backend: reinstall with "
      "`pip install .` (the build installs onednn-devel-cpu-gomp), or build with "
      "MGFAST_ONEDNN=ON to make a missing oneDNN an error");
}
CpuBackend::~CpuBackend() = default;
void CpuBackend::infer(const EngineBatch&, const EngineOutput&) {}
bool CpuBackend::has_summary() const { return false; }
bool CpuBackend::map_output() const { return false; }
net::Shape CpuBackend::output_shape() const { return {}; }
int CpuBackend::n_in() const { return 0; }
std::vector<std::string> CpuBackend::input_features() const { return {}; }
Precision CpuBackend::precision() const { return Precision::kFp32; }
int CpuBackend::threads() const { return 0; }
int CpuBackend::batch_size() const { return 0; }
double CpuBackend::flops_per_sample() const { return 0; }
bool onednn_available() { return false; }
std::string onednn_version() { return ""; }

#endif

}  // namespace mgfast
