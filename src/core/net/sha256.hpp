// SHA-256 (FIPS 180-4) of bytes, as lowercase hex: the model loader checks model.onnx against
// model.json's onnx_sha256 with it, as mgfast.model.load_model does.
#pragma once

#include <string>

namespace mgfast {

std::string sha256_hex(const std::string& bytes);

}  // namespace mgfast
