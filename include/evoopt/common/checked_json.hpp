#pragma once
// Checked reads of JSON values into typed fields. nlohmann's get<int>() converts whatever
// number it finds: 4294967297 becomes 1, -1 into an unsigned field becomes 2^64 − 1, 2.5
// becomes 2. These refuse a value that does not fit the field's type exactly, with one line
// naming where it comes from (`what`: "config.json: steps", "worker request: seed").
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"

namespace evoopt {

namespace checked_json_detail {
template <typename T>
struct is_vector : std::false_type {};
template <typename T>
struct is_vector<std::vector<T>> : std::true_type {};

template <typename T>
std::string type_name() {
  if constexpr (std::is_same_v<T, bool>)
    return "true or false";
  else if constexpr (std::is_same_v<T, std::string>)
    return "a string";
  else if constexpr (std::is_floating_point_v<T>)
    return "a number";
  else if constexpr (std::is_integral_v<T>)
    return "an integer in " + std::to_string(std::numeric_limits<T>::min()) + " … " + std::to_string(std::numeric_limits<T>::max());
  else
    return "an array";
}
}  // namespace checked_json_detail

// `j` as a T: a bool only from true/false, a string only from a string, a floating-point
// number from any number, an integer only from an integer that T holds exactly, a vector
// element by element. Throws evoopt::Error "WHAT must be TYPE, got VALUE".
template <typename T>
T json_as(const nlohmann::json& j, const std::string& what) {
  using namespace checked_json_detail;
  const auto fail = [&]() -> T {
    std::string got = j.dump();
    if (got.size() > 60) got = got.substr(0, 57) + "...";
    throw Error(what + " must be " + type_name<T>() + ", got " + got);
  };
  if constexpr (is_vector<T>::value) {
    if (!j.is_array()) throw Error(what + " must be an array, got " + j.dump().substr(0, 60));
    T out;
    out.reserve(j.size());
    for (std::size_t i = 0; i < j.size(); ++i) out.push_back(json_as<typename T::value_type>(j[i], what + "[" + std::to_string(i) + "]"));
    return out;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) return fail();
    return j.get<bool>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) return fail();
    return j.get<std::string>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.is_number()) return fail();
    return j.get<T>();
  } else {
    static_assert(std::is_integral_v<T>, "json_as: unsupported type");
    if (j.is_number_unsigned()) {
      const std::uint64_t v = j.get<std::uint64_t>();
      if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return fail();
      return static_cast<T>(v);
    }
    if (j.is_number_integer()) {
      const std::int64_t v = j.get<std::int64_t>();
      if (v < 0 && std::is_unsigned_v<T>) return fail();
      if constexpr (std::is_signed_v<T>)
        if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) || v > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
          return fail();
      return static_cast<T>(v);
    }
    return fail();
  }
}

// The member `key` of the object `j` as a T. `prefix` goes before the key in errors
// ("run request: ", "data.", or "" where the caller names the file): "PREFIXKEY is missing",
// "PREFIXKEY must be ..., got ...".
template <typename T>
T json_at(const nlohmann::json& j, const std::string& key, const std::string& prefix) {
  if (!j.is_object()) throw Error(prefix + key + " is missing (not inside a JSON object)");
  const auto it = j.find(key);
  if (it == j.end()) throw Error(prefix + key + " is missing");
  return json_as<T>(*it, prefix + key);
}

// Like json_at, but `fallback` when the key is absent (a field written before it existed).
template <typename T>
T json_value(const nlohmann::json& j, const std::string& key, const T& fallback, const std::string& prefix) {
  if (!j.is_object()) throw Error(prefix + key + " is missing (not inside a JSON object)");
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  return json_as<T>(*it, prefix + key);
}

// Checks that every key of a field list (`Spec::fields`, common/fields.hpp) present in `j`
// holds a value of its field's type (json_as), so that fields_from_json, which converts with
// nlohmann's get<T>(), never wraps one. Errors name PREFIXKEY.
template <typename Spec>
void check_fields_json(const Spec& spec, const nlohmann::json& j, const std::string& prefix) {
  if (!j.is_object()) throw Error(prefix + "must be a JSON object");
  Spec::fields(spec, [&](const char* key, const auto& field) {
    using T = std::decay_t<decltype(field)>;
    const auto it = j.find(key);
    if (it == j.end()) return;
    if constexpr (std::is_same_v<T, std::filesystem::path>)
      json_as<std::string>(*it, prefix + key);
    else
      json_as<T>(*it, prefix + key);
  });
}

}  // namespace evoopt
