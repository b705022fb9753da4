// The GPU inference engine's plan of a network and the per-element arithmetic of its kernels,
// shared by the CUDA engine (src/cuda/engine/backend_gpu.cu) and a host emulation of it
// (gpu_emulator.cpp) that runs the same plan and the same element functions on the CPU, with
// plain loops in place of cuDNN's convolution and cuBLAS's GEMM. The emulation is what tests the
// plan's padding, layouts, weight order and decoding on machines without a GPU.
//
// Layout: activations channels-last, (batch, length, channels). Each step's producer writes its
// output already padded with the zeros the next convolution needs, so convolutions run
// unpadded.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "features.hpp"
#include "grid.hpp"
#include "hd.hpp"
#include "network.hpp"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace mgfast::gpu {

// kPad: after a branched network's heatmap, its input copied into the padding the branch's first
// convolution needs (the trunk's output has two consumers).
// kConvOne: a one-channel convolution, and the average pooling after it when there is one, in
// one step (the convolution's full output, the largest activation of the paper's network, is
// then never stored).
enum class Op { kInput, kConvOne, kConvDnn, kPool, kDense, kHeads, kHeatmap, kPad };

struct PlanStep {
  Op op = Op::kInput;
  int layer = -1;            // index into the network's layers
  int len_in = 0, c_in = 0;  // input (unpadded length) and channels
  int len_out = 0, c_out = 0;
  int pl = 0, pr = 0;    // padding the consumer of this step's output needs
  int in_pad = 0;        // a convolution's own input padding (pad_l + pad_r)
  int pool = 1;          // kConvOne: the fused pooling's window (len_out the pooled length), or 1
  bool last = false;     // writes the network's output (fp32) instead of an activation
  bool summary = false;  // a heatmap whose output is the summary beside a branch's map
};

struct Plan {
  std::vector<PlanStep> steps;
  bool affine = false;  // a first affine layer, folded into the input step (on channel 0)
  float affine_a = 1.0f, affine_b = 0.0f;
  features::Channels input;          // the input step's channels, made from flux and ivar
  std::size_t act_elems = 0;         // per spectrum, per activation buffer (two ping-pong)
  std::size_t gemm_floats = 0;       // per spectrum: the widest dense output
  std::size_t out_per_spectrum = 2;  // floats: (probability, λ2796) or the map
  bool has_summary = false;          // a branched network: also (probability, λ2796)
};

// The padding a consumer layer needs on its input: a convolution's own, else none.
inline std::pair<int, int> consumer_pad(const net::Network& net, std::size_t next) {
  if (next >= net.layers.size()) return {0, 0};
  const net::Layer& l = net.layers[next];
  if (l.kind == net::LayerKind::kConv1d) return {l.pad_l, l.pad_r};
  return {0, 0};
}

// The steps of a network (validated by net.shapes(); throws std::invalid_argument otherwise).
inline Plan plan_network(const net::Network& net) {
  const std::vector<net::Shape> shapes = net.shapes();
  Plan p;
  const std::size_t nl = net.layers.size();
  std::size_t first = 0;
  if (nl > 0 && net.layers[0].kind == net::LayerKind::kAffine) {
    p.affine = true;
    p.affine_a = net.layers[0].weight[0];
    p.affine_b = net.layers[0].bias[0];
    first = 1;
  }
  p.input = net.input;
  PlanStep in;
  in.op = Op::kInput;
  in.len_in = in.len_out = net.n_in;
  in.c_in = in.c_out = net.in_channels();
  std::tie(in.pl, in.pr) = consumer_pad(net, first);
  p.steps.push_back(in);
  p.act_elems = std::size_t(net.n_in + in.pl + in.pr) * in.c_out;
  for (std::size_t i = first; i < nl; ++i) {
    const net::Layer& l = net.layers[i];
    PlanStep s;
    s.layer = static_cast<int>(i);
    s.len_in = shapes[i].length;
    s.c_in = shapes[i].channels;
    s.len_out = shapes[i + 1].length;
    s.c_out = shapes[i + 1].channels;
    s.last = i + 1 == nl;
    std::tie(s.pl, s.pr) = consumer_pad(net, i + 1);
    switch (l.kind) {
      case net::LayerKind::kConv1d:
        s.op = l.c_in == 1 ? Op::kConvOne : Op::kConvDnn;
        s.in_pad = l.pad_l + l.pad_r;
        if (s.op == Op::kConvOne && i + 1 < nl &&
            net.layers[i + 1].kind == net::LayerKind::kAvgPool1d) {
          s.pool = net.layers[i + 1].kernel;
          s.len_out = shapes[i + 2].length;
          s.last = i + 2 == nl;
          std::tie(s.pl, s.pr) = consumer_pad(net, i + 2);
          ++i;  // the pooling is done
        }
        if (s.op != Op::kConvDnn && s.last)
          throw std::invalid_argument("network layer " + std::to_string(s.layer) +
                                      ": a one-channel convolution cannot return the map");
        break;
      case net::LayerKind::kAvgPool1d:
        s.op = Op::kPool;
        break;
      case net::LayerKind::kFlatten:
        continue;  // channels-last activations are already the flattened features
      case net::LayerKind::kDense:
        s.op = Op::kDense;
        p.gemm_floats = std::max(p.gemm_floats, std::size_t(l.c_out));
        break;
      case net::LayerKind::kHeads:
        s.op = Op::kHeads;
        p.gemm_floats = std::max(p.gemm_floats, std::size_t(2));
        break;
      case net::LayerKind::kHeatmap:
        s.op = Op::kHeatmap;
        s.summary = i + 1 < nl && net.layers[i + 1].kind == net::LayerKind::kBranch;
        p.has_summary = p.has_summary || s.summary;
        break;
      case net::LayerKind::kBranch:
        // The heatmap's input again (it is still the current activation), padded for the
        // layer after the branch.
        s.op = Op::kPad;
        s.len_in = s.len_out = shapes[i + 1].length;
        s.c_in = s.c_out = shapes[i + 1].channels;
        break;
      case net::LayerKind::kAffine:
        throw std::invalid_argument("network layer " + std::to_string(i) +
                                    ": the affine map must come first");
    }
    p.act_elems = std::max(p.act_elems, std::size_t(s.len_out + s.pl + s.pr) * s.c_out);
    p.act_elems = std::max(p.act_elems, std::size_t(s.len_in + s.in_pad) * s.c_in);
    p.steps.push_back(s);
  }
  if (net.map_output()) {
    const net::Shape o = shapes.back();
    p.out_per_spectrum = std::size_t(o.channels) * o.length;
  }
  return p;
}

// A convolution's weights in cuDNN's NHWC filter order (c_out, 1, k, c_in), from ONNX's
// (c_out, c_in, k); one-channel convolutions keep (c_out, k).
inline std::vector<float> filter_nhwc(const net::Layer& l) {
  if (l.kind != net::LayerKind::kConv1d || l.c_in == 1) return l.weight;
  std::vector<float> w(l.weight.size());
  for (int o = 0; o < l.c_out; ++o)
    for (int c = 0; c < l.c_in; ++c)
      for (int k = 0; k < l.kernel; ++k)
        w[(std::size_t(o) * l.kernel + k) * l.c_in + c] =
            l.weight[(std::size_t(o) * l.c_in + c) * l.kernel + k];
  return w;
}

// ---- element arithmetic of the kernels (index i runs over the output's elements) ----------

MGFAST_HD float to_float(float v) { return v; }
#if defined(__CUDACC__)
__host__ __device__ inline float to_float(__half v) { return __half2float(v); }
#endif

// Where element i of a padded channels-last output (rows, pl + len + pr, c) lies: its row, its
// position in the unpadded length (outside [0, len) in the padding) and its channel.
struct PaddedIndex {
  long long row;
  int pos;
  int ch;
};

MGFAST_HD PaddedIndex padded_index(long long i, int len, int c, int pl, int pr) {
  const int lp = pl + len + pr;
  const long long rl = i / c;
  const long long r = rl / lp;
  return {r, static_cast<int>(rl - r * lp) - pl, static_cast<int>(i - rl * c)};
}

// Element i of the input step's output (rows, pl + n_in + pr, C): the input channels
// (features.hpp, the one definition training and the CPU engine use too) of flux x and ivar
// (null: no errors known; read only by the noise channels), the affine map on channel 0.
MGFAST_HD float input_at(long long i, const float* x, const float* ivar, int n_in,
                         const features::Channels& ch, bool affine, float a, float b, int pl,
                         int pr) {
  const PaddedIndex e = padded_index(i, n_in, ch.count, pl, pr);
  if (e.pos < 0 || e.pos >= n_in) return 0.0f;
  const long long at = e.row * n_in + e.pos;
  return features::channel_at(ch, e.ch, x[at], ivar ? ivar[at] : 0.0f, affine, a, b);
}

// A one-channel convolution at output position pos of channel ch, bias and ReLU applied, from
// its padded input row and weights (c_out, k).
template <class T>
MGFAST_HD float conv_one_value(const T* row, int pos, int ch, const float* w, const float* bias,
                               int k, int stride, int dilation, bool relu) {
  const T* s = row + static_cast<long long>(pos) * stride;
  const float* wc = w + static_cast<long long>(ch) * k;
  float acc = bias[ch];
  for (int j = 0; j < k; ++j) acc += wc[j] * to_float(s[static_cast<long long>(j) * dilation]);
  return relu ? (acc > 0.0f ? acc : 0.0f) : acc;
}

// Element i of a one-channel convolution's output, bias and ReLU fused, followed by a
// non-overlapping average over `pool` positions (1: none): (rows, pl + l_out + pr, c_out) with
// l_out the pooled length, from the padded input (rows, lp_in) and weights (c_out, k). Pooled,
// the same sums in the same order as the convolution then avgpool_at (identical in fp32, and no
// fp16 rounding in between).
template <class T>
MGFAST_HD float conv_one_at(long long i, const T* src, int lp_in, const float* w, const float* bias,
                            int k, int stride, int dilation, int pool, int l_out, int c_out,
                            bool relu, int pl, int pr) {
  const PaddedIndex e = padded_index(i, l_out, c_out, pl, pr);
  if (e.pos < 0 || e.pos >= l_out) return 0.0f;
  const T* row = src + e.row * lp_in;
  float acc = 0.0f;
  for (int q = 0; q < pool; ++q)
    acc += conv_one_value(row, e.pos * pool + q, e.ch, w, bias, k, stride, dilation, relu);
  return acc / pool;
}

// Element i of (rows, pl + len + pr, c) from (rows, len, c): bias (optional) and ReLU.
template <class T>
MGFAST_HD float epilogue_at(long long i, const T* raw, int len, int c, const float* bias, bool relu,
                            int pl, int pr) {
  const PaddedIndex e = padded_index(i, len, c, pl, pr);
  if (e.pos < 0 || e.pos >= len) return 0.0f;
  float v = to_float(raw[(e.row * len + e.pos) * c + e.ch]);
  if (bias) v += bias[e.ch];
  return relu ? (v > 0.0f ? v : 0.0f) : v;
}

// Element i of a non-overlapping average over k positions: (rows, len, c) into
// (rows, pl + len / k + pr, c).
template <class T>
MGFAST_HD float avgpool_at(long long i, const T* src, int len, int c, int k, int pl, int pr) {
  const int l_out = len / k;
  const PaddedIndex e = padded_index(i, l_out, c, pl, pr);
  if (e.pos < 0 || e.pos >= l_out) return 0.0f;
  const T* s = src + (e.row * len + static_cast<long long>(e.pos) * k) * c + e.ch;
  float acc = 0.0f;
  for (int j = 0; j < k; ++j) acc += to_float(s[static_cast<long long>(j) * c]);
  return acc / k;
}

// Element i of a dense layer's output (rows, f) from the GEMM's fp32 (rows, f).
MGFAST_HD float dense_bias_at(long long i, const float* y, int f, const float* bias, bool relu) {
  const float v = y[i] + bias[i % f];
  return relu ? (v > 0.0f ? v : 0.0f) : v;
}

// The paper network's heads of spectrum r: (sigmoid(z0 + b0), relu(z1 + b1)).
MGFAST_HD void heads_at(long long r, const float* y, const float* bias, float* out) {
  const float z0 = y[2 * r] + bias[0], z1 = y[2 * r + 1] + bias[1];
  out[2 * r] = 1.0f / (1.0f + expf(-z0));
  out[2 * r + 1] = z1 > 0.0f ? z1 : 0.0f;
}

// mgfast_fcn's heatmap head, the parts every thread layout shares: the cell logit of one
// position, and the decoding of the best cell into (probability, λ2796) given the "none" logit
// and the softmax denominator over positions and "none" (all relative to their maximum m).
template <class T>
MGFAST_HD float heatmap_logit(const T* v, int c, const float* w, const float* b) {
  float s = b[0];
  for (int k = 0; k < c; ++k) s += w[k] * to_float(v[k]);
  return s;
}

template <class T>
MGFAST_HD void heatmap_decode_best(const T* vb, int c, const float* w, const float* b, int cell,
                                   int best, float none, float m, float denom, float* out2) {
  float off = b[1];
  for (int k = 0; k < c; ++k) off += w[c + k] * to_float(vb[k]);
  off = fminf(fmaxf(off, 0.0f), static_cast<float>(cell) - 1e-3f);
  const double pix = fmin(fmax(static_cast<double>(cell) * best + off, 0.0), grid::kNPix - 1.0);
  out2[0] = 1.0f - expf(none - m) / denom;
  out2[1] = static_cast<float>(grid::wavelength_of_pixel(pix));
}

}  // namespace mgfast::gpu
