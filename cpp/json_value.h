// A minimal JSON reader: enough for the metadata export.py stores in a TorchScript file
// (objects, arrays, strings with escapes, numbers, true/false/null). No dependency.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace drivseg {

struct JsonValue {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<JsonValue> array;
  std::map<std::string, JsonValue> object;

  // The member `key` of an object, or nullptr when absent (or when this is not an object).
  const JsonValue* find(const std::string& key) const;
};

// Parses `text`; throws std::runtime_error naming the offset of the first error.
JsonValue parse_json(const std::string& text);

}  // namespace drivseg
