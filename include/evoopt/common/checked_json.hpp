#pragma once
// Checked reads of the members of a plain nlohmann::json, for from_json functions (config,
// budgets, run requests and results, task options) that run on messages between processes
// or inside a JsonView::convert. nlohmann's get<int>() converts whatever number it finds
// (4294967297 becomes 1, -1 into an unsigned field 2^64 − 1, 2.5 becomes 2); these refuse a
// value that does not fit the field's type exactly. The conversion and its range checks are
// JsonView's (common/json_io.hpp), so there is one reader and one message form:
//   "WHAT: expected an integer in [-2147483648, 2147483647], got an integer 4294967297".
// Errors are plain evoopt::Error, so an enclosing JsonView::convert adds the file and key path.
#include <filesystem>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/json_io.hpp"

namespace evoopt {

// `j` as a T (see JsonView::get); errors name `what`.
template <typename T>
T json_as(const nlohmann::json& j, const std::string& what) {
  try {
    return JsonView(j, what).get<T>();
  } catch (const JsonError& e) {
    throw Error(e.what());
  }
}

// The member `key` of the object `j` as a T. `prefix` goes before the key in errors
// ("run request: ", "data.", or "" where the caller names the file): "PREFIXKEY: missing",
// "PREFIXKEY: expected ..., got ...".
template <typename T>
T json_at(const nlohmann::json& j, const std::string& key, const std::string& prefix) {
  if (!j.is_object()) throw Error(prefix + key + ": missing (not inside a JSON object)");
  const auto it = j.find(key);
  if (it == j.end()) throw Error(prefix + key + ": missing");
  return json_as<T>(*it, prefix + key);
}

// Like json_at, but `fallback` when the key is absent (a field written before it existed).
template <typename T>
T json_value(const nlohmann::json& j, const std::string& key, const T& fallback, const std::string& prefix) {
  if (!j.is_object()) throw Error(prefix + key + ": missing (not inside a JSON object)");
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  return json_as<T>(*it, prefix + key);
}

}  // namespace evoopt
