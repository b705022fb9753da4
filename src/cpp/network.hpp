// A network as plain data: the layer list every inference backend builds from. No oneDNN or CUDA
// types here, so the description is shared by the CPU and GPU backends and by the bindings.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace mgfast::net {

enum class LayerKind {
  kConv1d,     // valid convolution, stride 1, optional fused ReLU
  kAvgPool1d,  // non-overlapping average (stride = kernel), no padding
  kFlatten,    // (channels, length) -> features in channels-last order: l * channels + c (Keras)
  kDense,      // y = W x + b, optional fused ReLU
  kHeads,      // two outputs from one input: sigmoid(row 0) = probability, relu(row 1) = λ2796
};

struct Layer {
  LayerKind kind = LayerKind::kConv1d;
  int kernel = 0;  // conv1d and avgpool1d
  int c_in = 0;    // conv1d: input channels; dense and heads: input features
  int c_out = 0;   // conv1d: output channels; dense: output features; heads: 2
  bool relu = false;
  // conv1d: (c_out, c_in, kernel), row-major (ONNX's OIW); dense and heads: (c_out, c_in)
  // row-major, the input features of a dense layer after a flatten in channels-last order.
  std::vector<float> weight;
  std::vector<float> bias;  // (c_out)
};

// Activation shape of one spectrum: channels × length (length 1 once flattened).
struct Shape {
  int channels = 0;
  int length = 0;
};

struct Network {
  int n_in = 0;  // input pixels, one channel
  std::vector<Layer> layers;

  // The shape entering each layer plus the final one; throws std::invalid_argument (naming the
  // layer) for a chain the backends cannot run.
  std::vector<Shape> shapes() const {
    if (n_in < 1) throw std::invalid_argument("network: the input needs at least one pixel");
    std::vector<Shape> out{{1, n_in}};
    Shape s = out.back();
    bool flat = false;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const Layer& l = layers[i];
      const std::string where = "network layer " + std::to_string(i) + ": ";
      const bool last = i + 1 == layers.size();
      switch (l.kind) {
        case LayerKind::kConv1d:
          if (flat) throw std::invalid_argument(where + "convolution after the flatten");
          if (l.c_in != s.channels || l.kernel < 1 || l.kernel > s.length || l.c_out < 1)
            throw std::invalid_argument(where + "convolution does not fit its input (" +
                                        std::to_string(s.channels) + " channels × " +
                                        std::to_string(s.length) + ")");
          s = {l.c_out, s.length - l.kernel + 1};
          break;
        case LayerKind::kAvgPool1d:
          if (flat || l.kernel < 1 || l.kernel > s.length)
            throw std::invalid_argument(where + "pooling does not fit its input");
          s = {s.channels, s.length / l.kernel};
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
    if (layers.empty() || layers.back().kind != LayerKind::kHeads)
      throw std::invalid_argument("network: the last layer must be the heads");
    return out;
  }

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
    }
    return f;
  }
};

}  // namespace mgfast::net
