// A network as plain data: the layer list every inference backend builds from. No oneDNN or CUDA
// types here, so the description is shared by the CPU and GPU backends and by the bindings.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "features.hpp"
#include "mgfast/engine.hpp"

namespace mgfast::net {

enum class LayerKind {
  kConv1d,     // convolution (stride, dilation, zero padding), optional fused ReLU
  kAvgPool1d,  // non-overlapping average (stride = kernel), no padding
  kFlatten,    // (channels, length) -> features in channels-last order: l * channels + c (Keras)
  kDense,      // y = W x + b, optional fused ReLU
  kHeads,      // two outputs from one input: sigmoid(row 0) = probability, relu(row 1) = λ2796
  kAffine,     // first layer only: x -> weight[0] x + bias[0], elementwise on input channel 0
               // (mgfast_fcn: 1 - flux; the other channels pass unchanged)
  kHeatmap,    // last layer, on (channels, length) features: per position a cell logit and an
               // offset (1x1 convolutions, weight rows 0 and 1), and a "no absorber" logit from
               // the channels' max and mean over positions (weight row 2: C max, then C mean);
               // kernel = pixels per position. Decoded in the backend: probability = 1 - softmax
               // weight of "none"; λ2796 at pixel kernel * argmax + offset.
  kBranch,     // right after a heatmap head: the layers after it read the heatmap's input, and
               // the network returns both the heatmap's (probability, λ2796), its summary, and
               // the map the last layer makes (mgfast_dual: one trunk, two heads)
};

struct Layer {
  LayerKind kind = LayerKind::kConv1d;
  int kernel = 0;  // conv1d and avgpool1d
  int c_in = 0;    // conv1d: input channels; dense and heads: input features
  int c_out = 0;   // conv1d: output channels; dense: output features; heads: 2
  bool relu = false;
  int stride = 1, dilation = 1, pad_l = 0, pad_r = 0;  // conv1d
  // conv1d: (c_out, c_in, kernel), row-major (ONNX's OIW); dense and heads: (c_out, c_in)
  // row-major, the input features of a dense layer after a flatten in channels-last order.
  std::vector<float> weight;
  std::vector<float> bias;  // (c_out)
};

// Activation shape of one spectrum: channels × length (length 1 once flattened); the engine
// contract's (include/mgfast/engine.hpp).
using Shape = ::mgfast::Shape;

struct Network {
  int n_in = 0;  // input pixels
  // The input channels the engines compute from flux and ivar (features.hpp); the default is
  // the flux alone, the one-channel input of every model before issue 16.
  features::Channels input;
  std::vector<Layer> layers;

  int in_channels() const { return input.count; }
  std::vector<std::string> input_features() const {
    std::vector<std::string> out;
    for (int c = 0; c < input.count; ++c) out.push_back(features::kind_name(input.kind[c]));
    return out;
  }
  bool flux_only() const { return input.flux_only(); }

  // The shape entering each layer plus the final one; throws std::invalid_argument (naming the
  // layer) for a chain the backends cannot run.
  std::vector<Shape> shapes() const {
    if (n_in < 1) throw std::invalid_argument("network: the input needs at least one pixel");
    if (input.count < 1 || input.count > features::kMaxChannels || input.kind[0] != features::kFlux)
      throw std::invalid_argument("network: 1 to " + std::to_string(features::kMaxChannels) +
                                  " input channels, the flux first");
    for (int c = 0; c < input.count; ++c)
      if (input.kind[c] < 0 || input.kind[c] >= features::kNumKinds)
        throw std::invalid_argument("network: unknown input channel " +
                                    std::to_string(input.kind[c]));
    std::vector<Shape> out{{input.count, n_in}};
    Shape s = out.back();
    bool flat = false;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const Layer& l = layers[i];
      const std::string where = "network layer " + std::to_string(i) + ": ";
      const bool branch_next = i + 1 < layers.size() && layers[i + 1].kind == LayerKind::kBranch;
      const bool last = i + 1 == layers.size() || (l.kind == LayerKind::kHeatmap && branch_next);
      switch (l.kind) {
        case LayerKind::kConv1d: {
          if (flat) throw std::invalid_argument(where + "convolution after the flatten");
          const int span = l.dilation * (l.kernel - 1) + 1;
          const int padded = s.length + l.pad_l + l.pad_r;
          if (l.c_in != s.channels || l.kernel < 1 || l.stride < 1 || l.dilation < 1 ||
              l.pad_l < 0 || l.pad_r < 0 || span > padded || l.c_out < 1)
            throw std::invalid_argument(where + "convolution does not fit its input (" +
                                        std::to_string(s.channels) + " channels × " +
                                        std::to_string(s.length) + ")");
          s = {l.c_out, (padded - span) / l.stride + 1};
          break;
        }
        case LayerKind::kAffine:
          if (i != 0) throw std::invalid_argument(where + "the affine input map must come first");
          if (l.weight.size() != 1 || l.bias.size() != 1)
            throw std::invalid_argument(where + "the affine map needs one weight and one bias");
          break;
        case LayerKind::kHeatmap:
          if (flat || !last || l.kernel < 1 || l.c_in != s.channels)
            throw std::invalid_argument(where + "the heatmap head must be last, on " +
                                        std::to_string(s.channels) + " channels");
          if (l.weight.size() != 4 * std::size_t(l.c_in) || l.bias.size() != 3)
            throw std::invalid_argument(where + "heatmap weights: 4 x channels and 3 biases");
          s = {2, 1};
          break;
        case LayerKind::kAvgPool1d:
          if (flat || l.kernel < 1 || l.kernel > s.length)
            throw std::invalid_argument(where + "pooling does not fit its input");
          s = {s.channels, s.length / l.kernel};
          break;
        case LayerKind::kBranch:
          if (i == 0 || layers[i - 1].kind != LayerKind::kHeatmap || i + 1 == layers.size())
            throw std::invalid_argument(where +
                                        "a branch must follow the heatmap head and "
                                        "lead to more layers");
          s = out[i - 1];  // the heatmap's input
          break;
        case LayerKind::kFlatten:
          if (flat) throw std::invalid_argument(where + "a second flatten");
          flat = true;
          s = {s.channels * s.length, 1};
          break;
        case LayerKind::kDense:
        case LayerKind::kHeads:
          if (!flat) throw std::invalid_argument(where + "dense layer before the flatten");
          if (l.c_in != s.channels || l.c_out < 1)
            throw std::invalid_argument(where + "dense layer reads " + std::to_string(l.c_in) +
                                        " features, its input has " + std::to_string(s.channels));
          if (l.kind == LayerKind::kHeads && (l.c_out != 2 || !last))
            throw std::invalid_argument(where + "the heads must be the last layer, 2 outputs");
          s = {l.c_out, 1};
          break;
      }
      const std::size_t n_w = l.kind == LayerKind::kConv1d
                                  ? std::size_t(l.c_out) * l.c_in * l.kernel
                                  : std::size_t(l.c_out) * l.c_in;
      const bool has_w = l.kind == LayerKind::kConv1d || l.kind == LayerKind::kDense ||
                         l.kind == LayerKind::kHeads;
      if (has_w && (l.weight.size() != n_w || l.bias.size() != std::size_t(l.c_out)))
        throw std::invalid_argument(where + "weight or bias has the wrong number of values");
      out.push_back(s);
    }
    if (layers.empty() ||
        (layers.back().kind != LayerKind::kHeads && layers.back().kind != LayerKind::kHeatmap &&
         layers.back().kind != LayerKind::kConv1d))
      throw std::invalid_argument(
          "network: the last layer must be the heads, a heatmap or a convolution (a map)");
    return out;
  }

  // A network that ends in a convolution returns its output map, (length, channels) per
  // spectrum in channels-last order (mgfast_multi's per-cell maps); the others two numbers.
  bool map_output() const { return !layers.empty() && layers.back().kind == LayerKind::kConv1d; }
  // A network with a branch also returns its heatmap head's (probability, λ2796) per spectrum.
  bool has_summary() const {
    for (const Layer& l : layers)
      if (l.kind == LayerKind::kBranch) return true;
    return false;
  }
  Shape output_shape() const { return shapes().back(); }

  // Multiply-adds × 2 of the convolutions and dense layers, per spectrum.
  double flops_per_sample() const {
    const std::vector<Shape> s = shapes();
    double f = 0;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const Layer& l = layers[i];
      if (l.kind == LayerKind::kConv1d)
        f += 2.0 * s[i + 1].length * l.c_out * l.c_in * l.kernel;
      else if (l.kind == LayerKind::kDense || l.kind == LayerKind::kHeads)
        f += 2.0 * l.c_out * l.c_in;
      else if (l.kind == LayerKind::kHeatmap)
        f += 2.0 * s[i].length * 2 * l.c_in + 4.0 * l.c_in;
    }
    return f;
  }
};

}  // namespace mgfast::net
