// A model directory read in C++: model.json (json_reader) and model.onnx (onnx_reader) into the
// metadata and the layer list (net::Network) that mgfast.model.load_model and
// mgfast.engine._core_layers build in Python, with the same checks. FCN architectures only
// (mgfast_fcn, mgfast_multi, mgfast_dual: the graphs model.py::_fcn_onnx writes).
#pragma once

#include <string>

#include "json_reader.hpp"
#include "mgfast/model.hpp"
#include "network.hpp"
#include "onnx_reader.hpp"

namespace mgfast {

struct LoadedModel {
  ModelInfo info;
  net::Network network;
  json::Value meta;  // model.json
};

LoadedModel load_model_dir(const std::string& model_dir);

// The checks and the layer list alone, for tests: model.json's text (its path for messages),
// and the graph with its SHA-256.
LoadedModel load_model_parts(const std::string& json_text, const onnx::Graph& graph,
                             const std::string& onnx_sha256, const std::string& where);

// The layers of a graph model.py::_fcn_onnx wrote, found by name and checked against the
// architecture's trunk and the input channels (mgfast.model._read_fcn_onnx).
net::Network fcn_network(const onnx::Graph& g, const std::string& arch,
                         const features::Channels& channels, const std::string& where);

}  // namespace mgfast
