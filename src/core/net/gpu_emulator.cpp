#include "gpu_emulator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "gpu_plan.hpp"

namespace mgfast::gpu {

namespace {

// cudnnConvolutionForward's arithmetic: NHWC input (rows, lp_in, c_in), NHWC filters
// (c_out, k, c_in), cross-correlation, no padding, into (rows, l_out, c_out).
void conv_nhwc(const float* x, std::int64_t rows, int lp_in, int c_in, const float* w, int k,
               int stride, int dilation, int l_out, int c_out, float* y) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (int l = 0; l < l_out; ++l)
      for (int o = 0; o < c_out; ++o) {
        float acc = 0.0f;
        for (int j = 0; j < k; ++j) {
          const float* xs =
              x + (r * lp_in + std::int64_t(l) * stride + std::int64_t(j) * dilation) * c_in;
          const float* ws = w + (std::int64_t(o) * k + j) * c_in;
          for (int c = 0; c < c_in; ++c) acc += ws[c] * xs[c];
        }
        y[(r * l_out + l) * c_out + o] = acc;
      }
}

// cublasGemmEx(CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, A, lda, B, ldb, C, ldc) in column-major terms:
// C(i, j) = Σ_p A(p, i) B(p, j).
void gemm_tn(int m, std::int64_t n, int k, const float* a, int lda, const float* b, int ldb,
             float* c, int ldc) {
  for (std::int64_t j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int p = 0; p < k; ++p) acc += a[std::int64_t(i) * lda + p] * b[j * ldb + p];
      c[j * ldc + i] = acc;
    }
}

// The heatmap kernel's arithmetic for one spectrum, sequentially.
void heatmap_row(const float* f, int len, int c, const float* w, const float* b, int cell,
                 float* out2) {
  std::vector<float> logit(len), mx(c, -std::numeric_limits<float>::infinity()), mean(c, 0.0f);
  for (int l = 0; l < len; ++l) logit[l] = heatmap_logit(f + std::int64_t(l) * c, c, w, b);
  for (int k = 0; k < c; ++k) {
    float sum = 0.0f;
    for (int l = 0; l < len; ++l) {
      mx[k] = std::max(mx[k], f[std::int64_t(l) * c + k]);
      sum += f[std::int64_t(l) * c + k];
    }
    mean[k] = sum / len;
  }
  float none = b[2];
  for (int k = 0; k < c; ++k) none += w[2 * c + k] * mx[k] + w[3 * c + k] * mean[k];
  int best = 0;
  for (int l = 1; l < len; ++l)
    if (logit[l] > logit[best]) best = l;
  const float m = std::max(logit[best], none);
  float denom = std::exp(none - m);
  for (int l = 0; l < len; ++l) denom += std::exp(logit[l] - m);
  heatmap_decode_best(f + std::int64_t(best) * c, c, w, b, cell, best, none, m, denom, out2);
}

}  // namespace

std::vector<float> emulate(const net::Network& net, const float* x, std::int64_t n,
                           std::vector<float>* summary, const float* ivar) {
  const Plan plan = plan_network(net);
  std::vector<float> act[2] = {std::vector<float>(std::size_t(n) * plan.act_elems),
                               std::vector<float>(std::size_t(n) * plan.act_elems)};
  std::vector<float> gemm(std::size_t(n) * std::max<std::size_t>(plan.gemm_floats, 1));
  std::vector<float> out(std::size_t(n) * plan.out_per_spectrum);
  std::vector<float> sum(plan.has_summary ? std::size_t(n) * 2 : 0);
  int cur = 0;
  for (const PlanStep& st : plan.steps) {
    const int other = 1 - cur;
    const long long padded = n * (st.len_out + st.pl + st.pr) * std::int64_t(st.c_out);
    switch (st.op) {
      case Op::kInput:
        for (long long i = 0; i < padded; ++i)
          act[cur][i] = input_at(i, x, ivar, net.n_in, plan.input, plan.affine, plan.affine_a,
                                 plan.affine_b, st.pl, st.pr);
        break;
      case Op::kConvOne: {
        const net::Layer& l = net.layers[st.layer];
        for (long long i = 0; i < padded; ++i)
          act[other][i] = conv_one_at(i, act[cur].data(), st.len_in + st.in_pad, l.weight.data(),
                                      l.bias.data(), l.kernel, l.stride, l.dilation, st.pool,
                                      st.len_out, st.c_out, l.relu, st.pl, st.pr);
        cur = other;
        break;
      }
      case Op::kConvDnn: {
        const net::Layer& l = net.layers[st.layer];
        const std::vector<float> w = filter_nhwc(l);
        conv_nhwc(act[cur].data(), n, st.len_in + st.in_pad, l.c_in, w.data(), l.kernel, l.stride,
                  l.dilation, st.len_out, st.c_out, act[other].data());
        if (st.last) {
          for (long long i = 0; i < n * st.len_out * std::int64_t(st.c_out); ++i)
            out[i] = epilogue_at(i, act[other].data(), st.len_out, st.c_out, l.bias.data(), l.relu,
                                 0, 0);
        } else {
          for (long long i = 0; i < padded; ++i)
            act[cur][i] = epilogue_at(i, act[other].data(), st.len_out, st.c_out, l.bias.data(),
                                      l.relu, st.pl, st.pr);
        }
        break;
      }
      case Op::kPool: {
        const net::Layer& l = net.layers[st.layer];
        for (long long i = 0; i < padded; ++i)
          act[other][i] =
              avgpool_at(i, act[cur].data(), st.len_in, st.c_in, l.kernel, st.pl, st.pr);
        cur = other;
        break;
      }
      case Op::kDense:
      case Op::kHeads: {
        const net::Layer& l = net.layers[st.layer];
        gemm_tn(l.c_out, n, l.c_in, l.weight.data(), l.c_in, act[cur].data(), l.c_in, gemm.data(),
                l.c_out);
        if (st.op == Op::kHeads) {
          for (long long r = 0; r < n; ++r) heads_at(r, gemm.data(), l.bias.data(), out.data());
        } else {
          for (long long i = 0; i < n * l.c_out; ++i)
            act[other][i] = dense_bias_at(i, gemm.data(), l.c_out, l.bias.data(), l.relu);
          cur = other;
        }
        break;
      }
      case Op::kHeatmap: {
        const net::Layer& l = net.layers[st.layer];
        float* dst = st.summary ? sum.data() : out.data();
        for (long long r = 0; r < n; ++r)
          heatmap_row(act[cur].data() + r * st.len_in * std::int64_t(st.c_in), st.len_in, st.c_in,
                      l.weight.data(), l.bias.data(), l.kernel, dst + 2 * r);
        break;
      }
      case Op::kPad:
        for (long long i = 0; i < padded; ++i)
          act[other][i] =
              epilogue_at(i, act[cur].data(), st.len_out, st.c_out, nullptr, false, st.pl, st.pr);
        cur = other;
        break;
    }
  }
  if (summary) *summary = std::move(sum);
  return out;
}

}  // namespace mgfast::gpu
