// A small reader of the ONNX protobuf wire format for exactly what mgfast's model graphs use
// (model.py's build_onnx / _fcn_onnx): initializers (float, double, int64 tensors, raw or typed
// data), nodes with int, float, string and list attributes, and the graph's inputs and outputs
// with their shapes. Anything else in the file is skipped as protobuf allows. No dependency on
// protobuf or onnx: the C++ API loads a model directory with nothing but this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mgfast::onnx {

enum DataType : int { kFloat = 1, kInt64 = 7, kDouble = 11 };

struct Tensor {
  std::string name;
  int data_type = 0;
  std::vector<std::int64_t> dims;
  std::vector<double> values;         // the elements (float, double or int64 data), row-major
  std::int64_t size() const;          // product of dims (1 for a scalar)
  std::vector<float> floats() const;  // the elements rounded to float32 (exact for float data)
};

struct Attribute {
  std::string name;
  int type =
      0;  // AttributeProto.AttributeType: 1 float, 2 int, 3 string, 4 tensor, 6 floats, 7 ints
  double f = 0.0;
  std::int64_t i = 0;
  std::string s;
  std::vector<double> floats;
  std::vector<std::int64_t> ints;
};

struct Node {
  std::string name, op_type, domain;
  std::vector<std::string> inputs, outputs;
  std::vector<Attribute> attributes;
  const Attribute* attribute(const std::string& name) const;  // null when absent
};

// One dimension of a value's shape: dim_value, or the symbolic dim_param ("N").
struct Dim {
  std::int64_t value = 0;
  std::string param;
  std::string str() const { return value != 0 ? std::to_string(value) : param; }
};

struct ValueInfo {
  std::string name;
  int elem_type = 0;
  std::vector<Dim> shape;
};

struct Graph {
  std::string name;
  std::int64_t ir_version = 0;
  std::vector<Node> nodes;
  std::vector<Tensor> initializers;
  std::vector<ValueInfo> inputs, outputs;
  const Tensor* initializer(const std::string& name) const;  // null when absent
  const Node* node(const std::string& name) const;           // by node name; null when absent
};

// The graph of a serialised ModelProto. Throws std::invalid_argument saying what is wrong with
// bytes that are not a well-formed ONNX model (truncated, bad wire types, no graph, a tensor
// whose data does not match its dims, external data).
Graph parse_model(const std::string& bytes);
// The same, read from a file (std::runtime_error when it cannot be read).
Graph read_model(const std::string& path);

}  // namespace mgfast::onnx
