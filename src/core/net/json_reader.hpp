// A minimal JSON reader (RFC 8259) for model.json: objects, arrays, strings (with \u escapes,
// surrogate pairs included, as UTF-8), numbers (as double, correctly rounded like Python's
// json), true, false, null. Enough for the fields the C++ API reads; no writer.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace mgfast::json {

struct Value {
  enum Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = kNull;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>>
      object;  // in file order; the last of a repeated key wins

  bool is_null() const { return type == kNull; }
  bool is_number() const { return type == kNumber; }
  bool is_string() const { return type == kString; }
  bool is_array() const { return type == kArray; }
  bool is_object() const { return type == kObject; }
  // The member `key` of an object (null for a missing key or a value that is not an object).
  const Value* get(const std::string& key) const;
};

// Throws std::invalid_argument naming the byte offset of the first problem.
Value parse(const std::string& text);

}  // namespace mgfast::json
