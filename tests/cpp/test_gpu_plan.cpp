// The GPU engine's plan (gpu_plan.hpp) on the paper network's shape: which steps it makes, and
// that the fused one-channel convolution + pooling equals the two steps it replaces, bit for bit.
#include <gtest/gtest.h>

#include <vector>

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
