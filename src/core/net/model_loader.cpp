// The model loader (model_loader.hpp), mirroring mgfast.model.load_model and _read_fcn_onnx.
#include "model_loader.hpp"

#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "grid.hpp"
#include "sha256.hpp"

namespace mgfast {
namespace {

constexpr const char* kFormat = "mgfast-model";
constexpr int kFormatVersion = 1;
constexpr std::size_t kMaxJsonBytes = 1u << 20;
constexpr int kFcnCell = 4;
constexpr int kMultiMaps = 7;

// (filters, kernel, stride, dilation) of the FCN trunks: model.py's FCN_CONVS and MULTI_CONVS.
struct ConvSpec {
  int filters, kernel, stride, dilation;
};
const std::vector<ConvSpec> kFcnConvs = {{16, 7, 1, 1}, {32, 5, 2, 1}, {32, 5, 2, 1},
                                         {32, 3, 1, 1}, {32, 3, 1, 2}, {32, 3, 1, 4},
                                         {32, 3, 1, 8}, {32, 3, 1, 16}};
const ConvSpec kMultiHeadConv = {32, 3, 1, 1};  // MULTI_CONVS[-1]

std::vector<ConvSpec> trunk_convs(const std::string& arch) {
  std::vector<ConvSpec> c = kFcnConvs;
  if (arch == "mgfast_multi") c.push_back(kMultiHeadConv);
  return c;
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& p, std::size_t* size = nullptr) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (size) *size = static_cast<std::size_t>(st.st_size);
  return true;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot be opened");
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string shape_str(const std::vector<std::string>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + dims[i];
  return s + ")";
}

void check_grid(const json::Value* g, const std::string& where) {
  if (!g || !g->is_object())
    throw std::invalid_argument(where + ": no grid definition (expected n_pix " +
                                std::to_string(grid::kNPix) + " and arms)");
  std::vector<std::string> diffs;
  const json::Value* n = g->get("n_pix");
  if (!n || !n->is_number() || n->number != grid::kNPix)
    diffs.push_back("n_pix (mgfast.grid: " + std::to_string(grid::kNPix) + ")");
  const json::Value* step = g->get("dlnlambda");
  if (!step || !step->is_number() ||
      std::abs(step->number - grid::kDlnLambda) > 1e-9 * grid::kDlnLambda)
    diffs.push_back("dlnlambda (mgfast.grid: 5e-05)");
  const json::Value* arms = g->get("arms");
  if (!arms || !arms->is_array() || arms->array.size() != std::size_t(grid::kNumArms)) {
    diffs.push_back("arms (mgfast.grid: 3 arms)");
  } else {
    for (int a = 0; a < grid::kNumArms; ++a) {
      const json::Value& arm = arms->array[a];
      const std::string name = grid::kArmNames[a];
      const json::Value* nm = arm.get("name");
      if (!nm || !nm->is_string() || nm->string != name) diffs.push_back("arm " + name + " name");
      const double want_f[2] = {grid::kArmLo[a], grid::kArmHi[a]};
      const char* keys_f[2] = {"lo", "hi"};
      for (int k = 0; k < 2; ++k) {
        const json::Value* v = arm.get(keys_f[k]);
        if (!v || !v->is_number() || std::abs(v->number - want_f[k]) > 1e-6 * std::abs(want_f[k]))
          diffs.push_back("arm " + name + " " + keys_f[k]);
      }
      const double want_i[2] = {double(grid::kArmStart[a]),
                                double(grid::kArmStart[a] + grid::kArmNPix[a])};
      const char* keys_i[2] = {"start", "stop"};
      for (int k = 0; k < 2; ++k) {
        const json::Value* v = arm.get(keys_i[k]);
        if (!v || !v->is_number() || v->number != want_i[k])
          diffs.push_back("arm " + name + " " + keys_i[k]);
      }
    }
  }
  if (!diffs.empty()) {
    std::string s;
    for (std::size_t i = 0; i < diffs.size(); ++i) s += (i ? "; " : "") + diffs[i];
    throw std::invalid_argument(where + ": the model was made for another spectral grid: " + s +
                                ". Use a model exported for this mgfast's grid");
  }
}

// model.json's input.channels as features::Channels (mgfast.model.check_channels).
features::Channels check_channels(const json::Value* inp, const std::string& where) {
  features::Channels ch;
  const json::Value* raw = inp ? inp->get("channels") : nullptr;
  if (!raw || raw->is_null()) return ch;
  if (!raw->is_array())
    throw std::invalid_argument(where + ": input channels: expected a list of names");
  const char* known[features::kNumKinds] = {"flux", "whitened", "log_snr"};
  std::vector<int> kinds;
  for (const json::Value& v : raw->array) {
    int k = -1;
    for (int i = 0; i < features::kNumKinds; ++i)
      if (v.is_string() && v.string == known[i]) k = i;
    if (k < 0)
      throw std::invalid_argument(where +
                                  ": input channels: unknown channel; known: flux, whitened, "
                                  "log_snr");
    for (int seen : kinds)
      if (seen == k)
        throw std::invalid_argument(where + ": input channels: a channel is named twice");
    kinds.push_back(k);
  }
  if (kinds.empty())
    throw std::invalid_argument(where +
                                ": input channels: none given; known: flux, whitened, "
                                "log_snr");
  if (kinds[0] != features::kFlux)
    throw std::invalid_argument(where + ": input channels: the first channel must be 'flux'");
  if (kinds.size() > std::size_t(features::kMaxChannels))
    throw std::invalid_argument(where + ": input channels: too many");
  ch.count = static_cast<int>(kinds.size());
  for (std::size_t i = 0; i < kinds.size(); ++i) ch.kind[i] = kinds[i];
  return ch;
}

std::vector<std::string> value_dims(const onnx::ValueInfo& v) {
  std::vector<std::string> d;
  for (const onnx::Dim& x : v.shape) d.push_back(x.str());
  return d;
}

std::vector<std::int64_t> ints_attr(const onnx::Node& nd, const char* name,
                                    std::vector<std::int64_t> fallback) {
  const onnx::Attribute* a = nd.attribute(name);
  return a ? a->ints : fallback;
}

}  // namespace

net::Network fcn_network(const onnx::Graph& g, const std::string& arch,
                         const features::Channels& channels, const std::string& where) {
  const bool fcn = arch == "mgfast_fcn", multi = arch == "mgfast_multi",
             dual = arch == "mgfast_dual";
  if (!fcn && !multi && !dual)
    throw std::invalid_argument(where + ": architecture '" + arch +
                                "' is not read by the C++ loader (mgfast_fcn, mgfast_multi, "
                                "mgfast_dual are; mgfast.load_model reads the others)");
  std::set<std::string> outs, expected;
  for (const onnx::ValueInfo& o : g.outputs) outs.insert(o.name);
  if (fcn || dual) expected = {"cell_logits", "cell_offsets", "none_logit"};
  if (multi || dual) expected.insert("cell_maps");
  if (outs != expected) throw std::invalid_argument(where + ": the outputs are not " + arch + "'s");

  const int n_ch = channels.count;
  const std::string in_name = channels.flux_only() ? "flux" : "features";
  std::vector<std::string> in_dims = {"N", std::to_string(grid::kNPix)};
  if (n_ch > 1) in_dims.insert(in_dims.begin() + 1, std::to_string(n_ch));
  std::vector<const onnx::ValueInfo*> ins;
  for (const onnx::ValueInfo& v : g.inputs)
    if (!g.initializer(v.name)) ins.push_back(&v);
  if (ins.size() != 1 || ins[0]->name != in_name || value_dims(*ins[0]) != in_dims)
    throw std::invalid_argument(where + ": input is not '" + in_name + "' " + shape_str(in_dims) +
                                " for the input channels model.json names");

  auto get = [&](const std::string& name) -> const onnx::Tensor& {
    const onnx::Tensor* t = g.initializer(name);
    if (!t)
      throw std::invalid_argument(where + ": " + name + " missing: not an " + arch + " graph");
    return *t;
  };
  auto conv = [&](int i, const ConvSpec& spec) {
    const std::string name = "conv" + std::to_string(i);
    const onnx::Node* nd = g.node(name);
    if (!nd)
      throw std::invalid_argument(where + ": node " + name + " missing: not an " + arch + " graph");
    const onnx::Tensor& k = get(name + "/kernel");
    if (k.dims.size() != 3 || k.dims[0] != spec.filters || k.dims[2] != spec.kernel ||
        ints_attr(*nd, "strides", {1}) != std::vector<std::int64_t>{spec.stride} ||
        ints_attr(*nd, "dilations", {1}) != std::vector<std::int64_t>{spec.dilation})
      throw std::invalid_argument(where + ": " + name + " does not match " + arch);
    const std::vector<std::int64_t> pads = ints_attr(*nd, "pads", {0, 0});
    if (pads.size() != 2) throw std::invalid_argument(where + ": " + name + " pads: expected 2");
    net::Layer l;
    l.kind = net::LayerKind::kConv1d;
    l.c_out = static_cast<int>(k.dims[0]);
    l.c_in = static_cast<int>(k.dims[1]);
    l.kernel = static_cast<int>(k.dims[2]);
    l.relu = true;
    l.stride = spec.stride;
    l.dilation = spec.dilation;
    l.pad_l = static_cast<int>(pads[0]);
    l.pad_r = static_cast<int>(pads[1]);
    l.weight = k.floats();
    l.bias = get(name + "/bias").floats();
    return l;
  };

  net::Network net;
  net.n_in = grid::kNPix;
  net.input = channels;
  const std::vector<float> scale = get("affine/scale").floats();
  const std::vector<float> offset = get("affine/offset").floats();
  bool ok = scale.size() == std::size_t(n_ch) && offset.size() == std::size_t(n_ch);
  for (int c = 1; ok && c < n_ch; ++c) ok = scale[c] == 1.0f && offset[c] == 0.0f;
  if (!ok)
    throw std::invalid_argument(where +
                                ": the affine input map must act on the flux (channel 0) only");
  net::Layer affine;
  affine.kind = net::LayerKind::kAffine;
  affine.c_in = affine.c_out = 1;
  affine.weight = {scale[0]};
  affine.bias = {offset[0]};
  net.layers.push_back(affine);
  const std::vector<ConvSpec> convs = trunk_convs(arch);
  for (std::size_t i = 0; i < convs.size(); ++i)
    net.layers.push_back(conv(static_cast<int>(i), convs[i]));
  if (net.layers[1].c_in != n_ch)
    throw std::invalid_argument(where + ": conv0 reads " + std::to_string(net.layers[1].c_in) +
                                " channels, model.json names " + std::to_string(n_ch));
  int c = convs.back().filters;
  if (fcn || dual) {
    const onnx::Tensor &cw = get("cell/kernel"), &ow = get("offset/kernel"),
                       &nw = get("none/kernel");
    if (cw.size() != c || ow.size() != c || nw.size() != 2 * c)
      throw std::invalid_argument(where + ": heatmap head kernels do not match the trunk");
    net::Layer h;
    h.kind = net::LayerKind::kHeatmap;
    h.kernel = kFcnCell;
    h.c_in = c;
    h.c_out = 2;
    for (const onnx::Tensor* t : {&cw, &ow, &nw}) {
      const std::vector<float> v = t->floats();
      h.weight.insert(h.weight.end(), v.begin(), v.end());
    }
    for (const char* b : {"cell/bias", "offset/bias", "none/bias"}) {
      const std::vector<float> v = get(b).floats();
      h.bias.insert(h.bias.end(), v.begin(), v.end());
    }
    if (h.bias.size() != 3)
      throw std::invalid_argument(where + ": heatmap head biases: expected 3");
    net.layers.push_back(h);
  }
  if (dual) {
    net::Layer br;
    br.kind = net::LayerKind::kBranch;
    net.layers.push_back(br);
    net.layers.push_back(conv(static_cast<int>(convs.size()), kMultiHeadConv));
    c = kMultiHeadConv.filters;
  }
  if (multi || dual) {
    const onnx::Tensor& k = get("head/kernel");
    if (k.dims != std::vector<std::int64_t>{kMultiMaps, c, 1})
      throw std::invalid_argument(where + ": head kernel does not have shape (7, " +
                                  std::to_string(c) + ", 1)");
    net::Layer h;
    h.kind = net::LayerKind::kConv1d;
    h.c_out = kMultiMaps;
    h.c_in = c;
    h.kernel = 1;
    h.relu = false;
    h.weight = k.floats();
    h.bias = get("head/bias").floats();
    if (h.bias.size() != std::size_t(kMultiMaps))
      throw std::invalid_argument(where + ": head bias: expected 7 values");
    net.layers.push_back(h);
  }
  net.shapes();  // the chain must be one the engines run (std::invalid_argument otherwise)
  return net;
}

LoadedModel load_model_parts(const std::string& json_text, const onnx::Graph& graph,
                             const std::string& onnx_sha256, const std::string& where) {
  LoadedModel m;
  try {
    m.meta = json::parse(json_text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
  const json::Value& meta = m.meta;
  const json::Value* fmt = meta.get("format");
  if (!fmt || !fmt->is_string() || fmt->string != kFormat)
    throw std::invalid_argument(where + ": not an mgfast model.json (expected \"format\": \"" +
                                kFormat + "\")");
  const json::Value* version = meta.get("format_version");
  if (!version || !version->is_number() || version->number != kFormatVersion)
    throw std::invalid_argument(where +
                                ": format_version is not 1, which this mgfast reads; "
                                "upgrade mgfast or re-export the model");
  const json::Value* arch = meta.get("architecture");
  static const std::set<std::string> known = {"bycycle2023", "mgfast_fcn", "mgfast_multi",
                                              "mgfast_dual"};
  if (!arch || !arch->is_string() || !known.count(arch->string))
    throw std::invalid_argument(where +
                                ": unknown architecture; this mgfast knows bycycle2023, "
                                "mgfast_dual, mgfast_fcn, mgfast_multi");
  check_grid(meta.get("grid"), where);
  const json::Value* inp = meta.get("input");
  const json::Value* norm = inp ? inp->get("normalisation") : nullptr;
  if (norm && norm->is_object()) norm = norm->get("kind");
  if (!norm || !norm->is_string() || norm->string != "none")
    throw std::invalid_argument(where + ": input normalisation is not supported (only 'none')");
  const features::Channels channels = check_channels(inp, where);
  if (!channels.flux_only() && arch->string == "bycycle2023")
    throw std::invalid_argument(where + ": architecture 'bycycle2023' reads the flux alone");
  const json::Value* thresholds = meta.get("thresholds");
  if (!thresholds || !thresholds->is_object())
    throw std::invalid_argument(where + ": thresholds must map names to numbers in 0-1");
  for (const auto& kv : thresholds->object) {
    if (!kv.second.is_number() || !(kv.second.number >= 0.0 && kv.second.number <= 1.0))
      throw std::invalid_argument(where + ": thresholds must map names to numbers in 0-1");
    m.info.thresholds[kv.first] = kv.second.number;
  }
  if (!m.info.thresholds.count("default"))
    throw std::invalid_argument(where + ": thresholds.default missing (expected a number in 0-1)");
  const json::Value* sha = meta.get("onnx_sha256");
  if (!sha || !sha->is_string() || sha->string != onnx_sha256)
    throw std::invalid_argument(where + ": model.onnx's SHA-256 " + onnx_sha256 +
                                " does not match model.json's onnx_sha256: the file is truncated, "
                                "corrupt or not this model's");
  const json::Value* cal = meta.get("calibration");
  if (cal && !cal->is_null()) {
    const json::Value* x = cal->get("x");
    const json::Value* y = cal->get("y");
    bool ok = x && y && x->is_array() && y->is_array() && x->array.size() == y->array.size() &&
              x->array.size() >= 2;
    for (std::size_t i = 0; ok && i < x->array.size(); ++i)
      ok = x->array[i].is_number() && y->array[i].is_number();
    if (!ok)
      throw std::invalid_argument(where + ": calibration must hold lists x and y of equal length");
    m.info.has_calibration = true;
    for (std::size_t i = 0; i < x->array.size(); ++i) {
      m.info.calibration_x.push_back(x->array[i].number);
      m.info.calibration_y.push_back(y->array[i].number);
    }
  }
  m.network = fcn_network(graph, arch->string, channels, where);
  m.info.architecture = arch->string;
  m.info.sha256 = onnx_sha256;
  m.info.n_pix = grid::kNPix;
  const json::Value* trained = meta.get("trained");
  m.info.trained = trained && trained->type == json::Value::kBool && trained->boolean;
  m.info.input_features = m.network.input_features();
  m.info.map_output = m.network.map_output();
  return m;
}

LoadedModel load_model_dir(const std::string& dir) {
  if (!is_dir(dir))
    throw std::runtime_error("model " + dir +
                             ": no such directory (expected model.onnx + model.json)");
  const std::string json_path = dir + "/model.json", onnx_path = dir + "/model.onnx";
  std::size_t json_size = 0;
  for (const std::string& p : {json_path, onnx_path})
    if (!is_file(p, p == json_path ? &json_size : nullptr))
      throw std::runtime_error("model " + dir + ": " + p.substr(dir.size() + 1) +
                               " is missing (a model is model.onnx + model.json)");
  if (json_size > kMaxJsonBytes)
    throw std::invalid_argument(json_path + ": larger than 1 MiB, not a model.json");
  const std::string onnx_bytes = slurp(onnx_path);
  const std::string digest = sha256_hex(onnx_bytes);
  onnx::Graph graph;
  // Checked against model.json before the graph is trusted; parse errors name the file.
  try {
    graph = onnx::parse_model(onnx_bytes);
  } catch (const std::invalid_argument& e) {
    // A corrupt file is reported as the SHA-256 mismatch when model.json disagrees.
    json::Value meta;
    try {
      meta = json::parse(slurp(json_path));
    } catch (const std::invalid_argument&) {
    }
    const json::Value* sha = meta.get("onnx_sha256");
    if (sha && sha->is_string() && sha->string != digest)
      throw std::invalid_argument(onnx_path + ": SHA-256 " + digest +
                                  " does not match model.json's: the file is truncated, corrupt "
                                  "or not this model's");
    throw std::invalid_argument(onnx_path + ": " + e.what());
  }
  LoadedModel m = load_model_parts(slurp(json_path), graph, digest, json_path);
  m.info.path = dir;
  return m;
}

}  // namespace mgfast
