// The ONNX wire-format reader (onnx_reader.hpp). Protobuf: each field is a varint key
// (field number << 3 | wire type) and a value: 0 varint, 1 fixed 64-bit, 2 length-delimited
// (strings, bytes, messages, packed repeated numbers), 5 fixed 32-bit. Field numbers are
// onnx.proto's.
#include "onnx_reader.hpp"

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace mgfast::onnx {
namespace {

class Reader {
 public:
  Reader(const char* p, std::size_t n, std::string what)
      : p_(p), end_(p + n), what_(std::move(what)) {}
  bool done() const { return p_ >= end_; }

  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) fail("truncated varint");
      const auto b = static_cast<unsigned char>(*p_++);
      v |= std::uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  // The next field's number and wire type.
  void key(int& field, int& wire) {
    const std::uint64_t k = varint();
    field = static_cast<int>(k >> 3);
    wire = static_cast<int>(k & 7);
    if (field == 0) fail("field number 0");
  }
  Reader sub(const std::string& what) {
    const std::uint64_t n = varint();
    if (n > std::uint64_t(end_ - p_)) fail("length-delimited field past the end");
    Reader r(p_, static_cast<std::size_t>(n), what_ + " > " + what);
    p_ += n;
    return r;
  }
  std::string bytes() {
    Reader r = sub("bytes");
    return std::string(r.p_, r.end_);
  }
  std::uint32_t fixed32() {
    if (end_ - p_ < 4) fail("truncated fixed32");
    std::uint32_t v;
    std::memcpy(&v, p_, 4);  // little-endian, as x86-64 and aarch64
    p_ += 4;
    return v;
  }
  std::uint64_t fixed64() {
    if (end_ - p_ < 8) fail("truncated fixed64");
    std::uint64_t v;
    std::memcpy(&v, p_, 8);
    p_ += 8;
    return v;
  }
  float f32() {
    const std::uint32_t u = fixed32();
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  double f64() {
    const std::uint64_t u = fixed64();
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  }
  void skip(int wire) {
    switch (wire) {
      case 0:
        varint();
        break;
      case 1:
        fixed64();
        break;
      case 2:
        sub("skipped");
        break;
      case 5:
        fixed32();
        break;
      default:
        fail("unsupported wire type " + std::to_string(wire));
    }
  }
  void expect(int wire, int want, int field) {
    if (wire != want)
      fail("field " + std::to_string(field) + " has wire type " + std::to_string(wire) +
           ", expected " + std::to_string(want));
  }
  // A repeated int64 field, packed (wire 2) or one value (wire 0).
  void int64s(int wire, std::vector<std::int64_t>& out) {
    if (wire == 0) {
      out.push_back(static_cast<std::int64_t>(varint()));
    } else if (wire == 2) {
      Reader r = sub("packed int64");
      while (!r.done()) out.push_back(static_cast<std::int64_t>(r.varint()));
    } else {
      fail("repeated int64 with wire type " + std::to_string(wire));
    }
  }
  template <class F>
  void fixeds(int wire, int size, F&& one) {  // a repeated float (4) or double (8) field
    if (wire == (size == 4 ? 5 : 1)) {
      one(*this);
    } else if (wire == 2) {
      Reader r = sub("packed numbers");
      while (!r.done()) one(r);
    } else {
      fail("repeated float with wire type " + std::to_string(wire));
    }
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw std::invalid_argument("not a readable ONNX file (" + what_ + ": " + why + ")");
  }

 private:
  const char* p_;
  const char* end_;
  std::string what_;
};

Tensor tensor(Reader r) {
  Tensor t;
  std::string raw;
  bool has_raw = false;
  std::vector<double> typed;
  int field, wire;
  while (!r.done()) {
    r.key(field, wire);
    switch (field) {
      case 1:
        r.int64s(wire, t.dims);
        break;
      case 2:
        r.expect(wire, 0, field);
        t.data_type = static_cast<int>(r.varint());
        break;
      case 4:
        r.fixeds(wire, 4, [&](Reader& q) { typed.push_back(q.f32()); });
        break;
      case 7: {
        std::vector<std::int64_t> v;
        r.int64s(wire, v);
        for (std::int64_t x : v) typed.push_back(static_cast<double>(x));
        break;
      }
      case 8:
        r.expect(wire, 2, field);
        t.name = r.bytes();
        break;
      case 9:
        r.expect(wire, 2, field);
        raw = r.bytes();
        has_raw = true;
        break;
      case 10:
        r.fixeds(wire, 8, [&](Reader& q) { typed.push_back(q.f64()); });
        break;
      case 13:
        r.fail("tensor with external data (not supported: mgfast models embed theirs)");
      default:
        r.skip(wire);
    }
  }
  if (t.data_type != kFloat && t.data_type != kDouble && t.data_type != kInt64)
    r.fail("tensor '" + t.name + "' of data type " + std::to_string(t.data_type) +
           " (float, double and int64 are read)");
  for (std::int64_t d : t.dims)
    if (d < 0) r.fail("tensor '" + t.name + "' has a negative dimension");
  const std::int64_t n = t.size();
  if (has_raw) {
    const std::size_t width = t.data_type == kFloat ? 4 : 8;
    if (raw.size() != std::size_t(n) * width)
      r.fail("tensor '" + t.name + "': " + std::to_string(raw.size()) + " bytes of data for " +
             std::to_string(n) + " elements");
    t.values.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const char* q = raw.data() + i * width;
      if (t.data_type == kFloat) {
        float f;
        std::memcpy(&f, q, 4);
        t.values[i] = f;
      } else if (t.data_type == kDouble) {
        std::memcpy(&t.values[i], q, 8);
      } else {
        std::int64_t v;
        std::memcpy(&v, q, 8);
        t.values[i] = static_cast<double>(v);
      }
    }
  } else {
    if (typed.size() != std::size_t(n))
      r.fail("tensor '" + t.name + "': " + std::to_string(typed.size()) + " values for " +
             std::to_string(n) + " elements");
    t.values = std::move(typed);
  }
  return t;
}

Attribute attribute(Reader r) {
  Attribute a;
  int field, wire;
  while (!r.done()) {
    r.key(field, wire);
    switch (field) {
      case 1:
        r.expect(wire, 2, field);
        a.name = r.bytes();
        break;
      case 2:
        r.expect(wire, 5, field);
        a.f = r.f32();
        break;
      case 3:
        r.expect(wire, 0, field);
        a.i = static_cast<std::int64_t>(r.varint());
        break;
      case 4:
        r.expect(wire, 2, field);
        a.s = r.bytes();
        break;
      case 7:
        r.fixeds(wire, 4, [&](Reader& q) { a.floats.push_back(q.f32()); });
        break;
      case 8:
        r.int64s(wire, a.ints);
        break;
      case 20:
        r.expect(wire, 0, field);
        a.type = static_cast<int>(r.varint());
        break;
      default:
        r.skip(wire);
    }
  }
  return a;
}

Node node(Reader r) {
  Node nd;
  int field, wire;
  while (!r.done()) {
    r.key(field, wire);
    switch (field) {
      case 1:
        r.expect(wire, 2, field);
        nd.inputs.push_back(r.bytes());
        break;
      case 2:
        r.expect(wire, 2, field);
        nd.outputs.push_back(r.bytes());
        break;
      case 3:
        r.expect(wire, 2, field);
        nd.name = r.bytes();
        break;
      case 4:
        r.expect(wire, 2, field);
        nd.op_type = r.bytes();
        break;
      case 5:
        r.expect(wire, 2, field);
        nd.attributes.push_back(attribute(r.sub("attribute")));
        break;
      case 7:
        r.expect(wire, 2, field);
        nd.domain = r.bytes();
        break;
      default:
        r.skip(wire);
    }
  }
  return nd;
}

// TensorShapeProto.Dimension, TensorShapeProto, TypeProto.Tensor, TypeProto, ValueInfoProto.
Dim dim(Reader r) {
  Dim d;
  int field, wire;
  while (!r.done()) {
    r.key(field, wire);
    if (field == 1 && wire == 0)
      d.value = static_cast<std::int64_t>(r.varint());
    else if (field == 2 && wire == 2)
      d.param = r.bytes();
    else
      r.skip(wire);
  }
  return d;
}

void tensor_type(Reader r, ValueInfo& v) {
  int field, wire;
  while (!r.done()) {
    r.key(field, wire);
    if (field == 1 && wire == 0) {
      v.elem_type = static_cast<int>(r.varint());
    } else if (field == 2 && wire == 2) {
      Reader shape = r.sub("shape");
      while (!shape.done()) {
        shape.key(field, wire);
        if (field == 1 && wire == 2)
          v.shape.push_back(dim(shape.sub("dim")));
        else
          shape.skip(wire);
      }
    } else {
      r.skip(wire);
    }
  }
}

ValueInfo value_info(Reader r) {
  ValueInfo v;
  int field, wire;
  while (!r.done()) {
    r.key(field, wire);
    if (field == 1 && wire == 2) {
      v.name = r.bytes();
    } else if (field == 2 && wire == 2) {
      Reader type = r.sub("type");
      while (!type.done()) {
        type.key(field, wire);
        if (field == 1 && wire == 2)
          tensor_type(type.sub("tensor_type"), v);
        else
          type.skip(wire);
      }
    } else {
      r.skip(wire);
    }
  }
  return v;
}

Graph graph(Reader r) {
  Graph g;
  int field, wire;
  while (!r.done()) {
    r.key(field, wire);
    switch (field) {
      case 1:
        r.expect(wire, 2, field);
        g.nodes.push_back(node(r.sub("node")));
        break;
      case 2:
        r.expect(wire, 2, field);
        g.name = r.bytes();
        break;
      case 5:
        r.expect(wire, 2, field);
        g.initializers.push_back(tensor(r.sub("initializer")));
        break;
      case 11:
        r.expect(wire, 2, field);
        g.inputs.push_back(value_info(r.sub("input")));
        break;
      case 12:
        r.expect(wire, 2, field);
        g.outputs.push_back(value_info(r.sub("output")));
        break;
      default:
        r.skip(wire);
    }
  }
  return g;
}

}  // namespace

std::int64_t Tensor::size() const {
  std::int64_t n = 1;
  for (std::int64_t d : dims) n *= d;
  return n;
}

std::vector<float> Tensor::floats() const {
  return std::vector<float>(values.begin(), values.end());
}

const Attribute* Node::attribute(const std::string& n) const {
  for (const Attribute& a : attributes)
    if (a.name == n) return &a;
  return nullptr;
}

const Tensor* Graph::initializer(const std::string& n) const {
  for (const Tensor& t : initializers)
    if (t.name == n) return &t;
  return nullptr;
}

const Node* Graph::node(const std::string& n) const {
  for (const Node& nd : nodes)
    if (nd.name == n) return &nd;
  return nullptr;
}

Graph parse_model(const std::string& bytes) {
  Reader r(bytes.data(), bytes.size(), "ModelProto");
  Graph g;
  bool has_graph = false;
  std::int64_t ir = 0;
  int field, wire;
  while (!r.done()) {
    r.key(field, wire);
    if (field == 1 && wire == 0) {
      ir = static_cast<std::int64_t>(r.varint());
    } else if (field == 7 && wire == 2) {
      g = graph(r.sub("graph"));
      has_graph = true;
    } else {
      r.skip(wire);
    }
  }
  if (!has_graph) r.fail("no graph");
  g.ir_version = ir;
  return g;
}

Graph read_model(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot be opened");
  std::ostringstream s;
  s << f.rdbuf();
  if (!f && !f.eof()) throw std::runtime_error(path + ": cannot be read");
  try {
    return parse_model(s.str());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

}  // namespace mgfast::onnx
