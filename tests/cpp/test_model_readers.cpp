// The C++ API's readers: JSON (json_reader), SHA-256, the ONNX wire format (onnx_reader) on
// hand-made protobuf bytes, and the model loader on the shipped default model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "json_reader.hpp"
#include "model_loader.hpp"
#include "onnx_reader.hpp"
#include "sha256.hpp"

namespace mgfast {
namespace {

TEST(Json, ParsesValuesNumbersAndEscapes) {
  const json::Value v = json::parse(
      R"( {"a": [1, -2.5E+3, 5e-05, 0.9191294312477112, true, false, null],
           "s": "\u03bb2796 \"q\" \\ \/ \n \ud83d\ude00", "o": {"k": {}}, "e": [], "a": 7} )");
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.get("a")->number, 7.0);  // a repeated key: the last wins, as in Python
  const json::Value* o = v.get("o");
  ASSERT_TRUE(o && o->get("k") && o->get("k")->is_object());
  EXPECT_TRUE(v.get("e")->is_array());
  EXPECT_EQ(v.get("s")->string,
            "\xce\xbb"
            "2796 \"q\" \\ / \n \xf0\x9f\x98\x80");
  EXPECT_EQ(v.get("missing"), nullptr);
  const json::Value w = json::parse("[1, -2.5E+3, 5e-05, 0.9191294312477112, true, false, null]");
  ASSERT_EQ(w.array.size(), 7u);
  EXPECT_EQ(w.array[1].number, -2500.0);
  EXPECT_EQ(w.array[2].number, 5e-05);
  EXPECT_EQ(w.array[3].number, 0.9191294312477112);  // correctly rounded, as Python's float()
  EXPECT_TRUE(w.array[4].boolean);
  EXPECT_EQ(w.array[5].type, json::Value::kBool);
  EXPECT_TRUE(w.array[6].is_null());
}

TEST(Json, RefusesMalformedText) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"open", "01", "1.", "1e", "NaN", "[1] x",
                          "{\"a\":1,}", "\"\\x\"", "\"\\u12g4\"", "tru", "\"a\nb\""})
    EXPECT_THROW(json::parse(bad), std::invalid_argument) << bad;
  EXPECT_THROW(json::parse(std::string(1000, '[')), std::invalid_argument);  // too deep
  EXPECT_THROW(json::parse("1e999"), std::invalid_argument);
}

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// A protobuf writer for the test's hand-made ONNX models.
struct Pb {
  std::string b;
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      b += static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    b += static_cast<char>(v);
  }
  Pb& key(int field, int wire) {
    varint(std::uint64_t(field) << 3 | std::uint64_t(wire));
    return *this;
  }
  Pb& num(int field, std::uint64_t v) {
    key(field, 0).varint(v);
    return *this;
  }
  Pb& bytes(int field, const std::string& s) {
    key(field, 2).varint(s.size());
    b += s;
    return *this;
  }
  Pb& msg(int field, const Pb& m) { return bytes(field, m.b); }
};

std::string raw_floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

Pb conv_model() {
  Pb dims;  // packed dims (2, 1, 3)
  dims.varint(2);
  dims.varint(1);
  dims.varint(3);
  Pb weight;
  weight.bytes(1, dims.b).num(2, onnx::kFloat).bytes(8, "conv0/kernel");
  weight.bytes(9, raw_floats({1.5f, -2.0f, 0.25f, 3.0f, 4.0f, -0.5f}));
  Pb bias;  // typed float_data, unpacked dims and floats
  bias.num(1, 2).num(2, onnx::kFloat).bytes(8, "conv0/bias");
  for (float f : {0.5f, -1.0f}) {
    bias.key(4, 5);
    bias.b += raw_floats({f});
  }
  Pb pads;
  pads.varint(1);
  pads.varint(2);
  Pb attr;
  attr.bytes(1, "pads").bytes(8, pads.b).num(20, 7);
  Pb node;
  node.bytes(1, "flux").bytes(1, "conv0/kernel").bytes(1, "conv0/bias").bytes(2, "y");
  node.bytes(3, "conv0").bytes(4, "Conv").msg(5, attr);
  Pb dim_n, dim_pix, shape, tensor_type, type, input;
  dim_n.bytes(2, "N");
  dim_pix.num(1, 6315);
  shape.msg(1, dim_n).msg(1, dim_pix);
  tensor_type.num(1, onnx::kFloat).msg(2, shape);
  type.msg(1, tensor_type);
  input.bytes(1, "flux").msg(2, type);
  Pb graph;
  graph.msg(1, node).bytes(2, "g").msg(5, weight).msg(5, bias).msg(11, input);
  graph.bytes(10, "a doc string, skipped");
  Pb model;
  model.num(1, 8).bytes(2, "mgfast").msg(7, graph);
  return model;
}

TEST(OnnxReader, ReadsInitializersNodesAndShapes) {
  const onnx::Graph g = onnx::parse_model(conv_model().b);
  EXPECT_EQ(g.ir_version, 8);
  EXPECT_EQ(g.name, "g");
  const onnx::Tensor* w = g.initializer("conv0/kernel");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dims, (std::vector<std::int64_t>{2, 1, 3}));
  EXPECT_EQ(w->floats(), (std::vector<float>{1.5f, -2.0f, 0.25f, 3.0f, 4.0f, -0.5f}));
  const onnx::Tensor* b = g.initializer("conv0/bias");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->floats(), (std::vector<float>{0.5f, -1.0f}));
  const onnx::Node* n = g.node("conv0");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->op_type, "Conv");
  EXPECT_EQ(n->inputs.size(), 3u);
  ASSERT_NE(n->attribute("pads"), nullptr);
  EXPECT_EQ(n->attribute("pads")->ints, (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(n->attribute("strides"), nullptr);
  ASSERT_EQ(g.inputs.size(), 1u);
  ASSERT_EQ(g.inputs[0].shape.size(), 2u);
  EXPECT_EQ(g.inputs[0].shape[0].str(), "N");
  EXPECT_EQ(g.inputs[0].shape[1].str(), "6315");
}

TEST(OnnxReader, RefusesBrokenBytes) {
  const std::string good = conv_model().b;
  for (std::size_t cut : {std::size_t(1), good.size() / 2, good.size() - 1})
    EXPECT_THROW(onnx::parse_model(good.substr(0, cut)), std::invalid_argument) << cut;
  EXPECT_THROW(onnx::parse_model(""), std::invalid_argument);  // no graph
  Pb bad_wire;
  bad_wire.key(7, 3);  // start-group: not used by ONNX
  EXPECT_THROW(onnx::parse_model(bad_wire.b), std::invalid_argument);
  Pb short_tensor, graph, model;  // 2 elements, 1 float of data
  short_tensor.num(1, 2).num(2, onnx::kFloat).bytes(8, "t").bytes(9, raw_floats({1.0f}));
  graph.msg(5, short_tensor);
  model.msg(7, graph);
  EXPECT_THROW(onnx::parse_model(model.b), std::invalid_argument);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

const std::string kDefault = std::string(MGFAST_SOURCE_DIR) + "/python/mgfast/models/default";

TEST(ModelLoader, ReadsTheShippedDefaultModel) {
  const LoadedModel m = load_model_dir(kDefault);
  EXPECT_EQ(m.info.architecture, "mgfast_fcn");
  EXPECT_EQ(m.info.sha256, sha256_hex(read_file(kDefault + "/model.onnx")));
  EXPECT_EQ(m.info.input_features, (std::vector<std::string>{"flux", "whitened", "log_snr"}));
  EXPECT_GT(m.info.thresholds.at("default"), 0.0);
  EXPECT_FALSE(m.info.map_output);
  // The affine map, the trunk's 8 convolutions, the heatmap head (mgfast.engine._core_layers).
  ASSERT_EQ(m.network.layers.size(), 10u);
  EXPECT_EQ(m.network.layers[0].kind, net::LayerKind::kAffine);
  EXPECT_EQ(m.network.layers[0].weight, std::vector<float>{-1.0f});
  EXPECT_EQ(m.network.layers[1].c_in, 3);
  EXPECT_EQ(m.network.layers[2].stride, 2);
  EXPECT_EQ(m.network.layers[8].dilation, 16);
  EXPECT_EQ(m.network.layers[9].kind, net::LayerKind::kHeatmap);
  EXPECT_EQ(m.network.layers[9].weight.size(), 4u * 32u);
  EXPECT_EQ(m.network.output_shape().channels, 2);
}

TEST(ModelLoader, RefusesWhatPythonRefuses) {
  const std::string json = read_file(kDefault + "/model.json");
  const onnx::Graph g = onnx::read_model(kDefault + "/model.onnx");
  const std::string sha = sha256_hex(read_file(kDefault + "/model.onnx"));
  EXPECT_NO_THROW(load_model_parts(json, g, sha, "m"));
  EXPECT_THROW(load_model_parts(json, g, std::string(64, '0'), "m"), std::invalid_argument);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string j = json;
    const std::size_t at = j.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return j.replace(at, from.size(), to);
  };
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"n_pix\": 6315", "\"n_pix\": 6316"},
           {"\"mgfast-model\"", "\"other\""},
           {"\"format_version\": 1", "\"format_version\": 2"},
           {"\"architecture\": \"mgfast_fcn\"", "\"architecture\": \"unknown\""},
           {"\"log_snr\"", "\"snr\""},
           {"\"flux\",", "\"whitened\","},
           {"\"kind\": \"none\"", "\"kind\": \"median\""},
           {"\"default\":", "\"dflt\":"},
           {"\"red\"", "\"blue\""},
           {"\"lo\": 3926.0", "\"lo\": 3927.0"}}) {
    EXPECT_THROW(load_model_parts(with(from, to), g, sha, "m"), std::invalid_argument) << from;
  }
  EXPECT_THROW(load_model_parts("{", g, sha, "m"), std::invalid_argument);
  // The graph must be the architecture model.json names: the default is no mgfast_multi.
  EXPECT_THROW(load_model_parts(
                   with("\"architecture\": \"mgfast_fcn\"", "\"architecture\": \"mgfast_multi\""),
                   g, sha, "m"),
               std::invalid_argument);
  // A flux-only model.json does not match this three-channel graph.
  const std::size_t at = json.find("\"channels\"");
  ASSERT_NE(at, std::string::npos);
  std::string flux_only = json;
  flux_only.replace(at, json.find(']', at) + 1 - at, "\"channels\": [\"flux\"]");
  EXPECT_THROW(load_model_parts(flux_only, g, sha, "m"), std::invalid_argument);
  EXPECT_THROW(load_model_dir(kDefault + "/no-such-model"), std::runtime_error);
}

}  // namespace
}  // namespace mgfast
