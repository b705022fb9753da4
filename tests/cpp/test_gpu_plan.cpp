// The GPU engine's plan (gpu_plan.hpp) on the paper network's shape: which steps it makes, and
// that the fused one-channel convolution + pooling equals the two steps it replaces, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "features.hpp"
#include "gpu_plan.hpp"
#include "network.hpp"

namespace {

using mgfast::gpu::Op;
namespace net = mgfast::net;

net::Layer conv(int c_in, int c_out, int k) {
  net::Layer l;
  l.kind = net::LayerKind::kConv1d;
  l.c_in = c_in;
  l.c_out = c_out;
  l.kernel = k;
  l.relu = true;
  for (int i = 0; i < c_out * c_in * k; ++i) l.weight.push_back(0.01f * float((i * 37) % 23 - 11));
  for (int i = 0; i < c_out; ++i) l.bias.push_back(0.1f * float(i % 3) - 0.05f);
  return l;
}

net::Layer pool(int k) {
  net::Layer l;
  l.kind = net::LayerKind::kAvgPool1d;
  l.kernel = k;
  return l;
}

TEST(GpuPlan, OneChannelConvolutionAndPoolingAreOneStep) {
  net::Network n;
  n.n_in = 200;
  n.layers = {conv(1, 8, 10), pool(5), conv(8, 4, 3)};
  const mgfast::gpu::Plan p = mgfast::gpu::plan_network(n);
  ASSERT_EQ(p.steps.size(), 3u);  // input, conv+pool, conv
  EXPECT_EQ(p.steps[1].op, Op::kConvOne);
  EXPECT_EQ(p.steps[1].pool, 5);
  EXPECT_EQ(p.steps[1].len_out, (200 - 10 + 1) / 5);
  EXPECT_EQ(p.steps[2].op, Op::kConvDnn);
  // The convolution's full output (191 x 8) is never stored: the largest buffer is the pooled
  // one's or the input's.
  EXPECT_LT(p.act_elems, std::size_t(191 * 8));

  n.layers = {conv(1, 8, 10), conv(8, 4, 3)};  // no pooling after it: a plain convolution
  const mgfast::gpu::Plan q = mgfast::gpu::plan_network(n);
  ASSERT_EQ(q.steps.size(), 3u);
  EXPECT_EQ(q.steps[1].op, Op::kConvOne);
  EXPECT_EQ(q.steps[1].pool, 1);
  EXPECT_EQ(q.steps[1].len_out, 200 - 10 + 1);
}

TEST(GpuPlan, FusedStepEqualsConvolutionThenPooling) {
  const net::Layer c = conv(1, 3, 4);
  const int len = 40, l_conv = len - 4 + 1, k = 5, l_out = l_conv / k;
  std::vector<float> x(len);
  for (int i = 0; i < len; ++i) x[i] = 1.0f - 0.03f * float((i * 7) % 11);
  std::vector<float> full(std::size_t(l_conv) * 3);
  for (long long i = 0; i < l_conv * 3; ++i)  // pool 1: the convolution alone
    full[std::size_t(i)] = mgfast::gpu::conv_one_at(
        i, x.data(), len, c.weight.data(), c.bias.data(), 4, 1, 1, 1, l_conv, 3, true, 0, 0);
  for (long long i = 0; i < l_out * 3; ++i) {
    const float two = mgfast::gpu::avgpool_at(i, full.data(), l_conv, 3, k, 0, 0);
    const float one = mgfast::gpu::conv_one_at(i, x.data(), len, c.weight.data(), c.bias.data(), 4,
                                               1, 1, k, l_out, 3, true, 0, 0);
    EXPECT_EQ(one, two) << "element " << i;
  }
}

}  // namespace

// Issue 16: the input channels (features.hpp) and a network that reads three of them.
TEST(Features, ChannelsFollowTheirDefinition) {
  using namespace mgfast::features;
  const float s = std::sqrt(400.0f);  // ivar 400: σ = 0.05
  EXPECT_FLOAT_EQ(value(kFlux, 0.7f, s), 0.7f);
  EXPECT_FLOAT_EQ(value(kWhitened, 0.9f, s), (1.0f - 0.9f) * 20.0f / 4.0f);
  EXPECT_FLOAT_EQ(value(kWhitened, 0.2f, s), 2.0f);   // clamped at 8 σ
  EXPECT_FLOAT_EQ(value(kWhitened, 1.8f, s), -2.0f);  // and at -8 σ
  EXPECT_FLOAT_EQ(value(kLogSnr, 1.0f, s), float(std::log10(21.0) / 2));
  for (const float masked : {0.0f, -1.0f, INFINITY, NAN}) {  // no usable weight: masked
    EXPECT_EQ(sqrt_ivar(masked), 0.0f);
    EXPECT_EQ(value(kWhitened, 0.3f, sqrt_ivar(masked)), 0.0f);
    EXPECT_EQ(value(kLogSnr, 0.3f, sqrt_ivar(masked)), 0.0f);
  }
  Channels ch;
  ch.count = 3;
  ch.kind[1] = kWhitened;
  ch.kind[2] = kLogSnr;
  // the affine map acts on channel 0 only
  EXPECT_FLOAT_EQ(channel_at(ch, 0, 0.9f, 400.0f, true, -1.0f, 1.0f), 1.0f - 0.9f);
  EXPECT_FLOAT_EQ(channel_at(ch, 1, 0.9f, 400.0f, true, -1.0f, 1.0f), 0.5f);
  std::vector<float> out(6);
  const float flux[2] = {0.9f, 1.0f}, ivar[2] = {400.0f, 0.0f};
  fill(ch, flux, ivar, 2, true, out.data());  // channels-last (len, C)
  EXPECT_FLOAT_EQ(out[0], 0.9f);
  EXPECT_FLOAT_EQ(out[1], 0.5f);
  EXPECT_EQ(out[4], 0.0f);
  EXPECT_EQ(out[5], 0.0f);
  fill(ch, flux, ivar, 2, false, out.data());  // channels-first (C, len)
  EXPECT_FLOAT_EQ(out[2], 0.5f);
  EXPECT_EQ(out[5], 0.0f);
}

TEST(GpuPlan, ThreeInputChannelsAreOneInputStepAndACudnnConvolution) {
  net::Network n;
  n.n_in = 50;
  n.input.count = 3;
  n.input.kind[1] = mgfast::features::kWhitened;
  n.input.kind[2] = mgfast::features::kLogSnr;
  net::Layer affine;
  affine.kind = net::LayerKind::kAffine;
  affine.weight = {-1.0f};
  affine.bias = {1.0f};
  net::Layer first = conv(3, 4, 5);
  first.pad_l = first.pad_r = 2;
  n.layers = {affine, first, conv(4, 2, 3)};
  const mgfast::gpu::Plan p = mgfast::gpu::plan_network(n);
  ASSERT_EQ(p.steps.size(), 3u);
  EXPECT_EQ(p.steps[0].op, Op::kInput);
  EXPECT_EQ(p.steps[0].c_out, 3);
  EXPECT_EQ(p.steps[0].pl, 2);
  EXPECT_EQ(p.steps[1].op, Op::kConvDnn);
  EXPECT_GE(p.act_elems, std::size_t(54 * 3));
  // The input step's elements: padding zeros, 1 - flux, then the two noise channels.
  std::vector<float> flux(50, 0.9f), ivar(50, 400.0f);
  ivar[10] = 0.0f;
  auto at = [&](int pos, int c) {
    return mgfast::gpu::input_at((pos + 2) * 3 + c, flux.data(), ivar.data(), 50, p.input, p.affine,
                                 p.affine_a, p.affine_b, 2, 2);
  };
  EXPECT_EQ(at(-1, 0), 0.0f);
  EXPECT_EQ(at(50, 2), 0.0f);
  EXPECT_FLOAT_EQ(at(3, 0), 1.0f - 0.9f);
  EXPECT_FLOAT_EQ(at(3, 1), 0.5f);
  EXPECT_FLOAT_EQ(at(3, 2), float(std::log10(21.0) / 2));
  EXPECT_EQ(at(10, 1), 0.0f);  // masked
  EXPECT_EQ(at(10, 2), 0.0f);

  n.layers[1] = conv(1, 4, 5);  // a first convolution that reads one channel does not fit
  EXPECT_THROW(mgfast::gpu::plan_network(n), std::invalid_argument);
  n.input.kind[0] = mgfast::features::kLogSnr;  // the flux must come first
  EXPECT_THROW(n.shapes(), std::invalid_argument);
}
