#pragma once
// A struct serialised through its one field list: `Spec::fields(spec, visit)` calls
// `visit(key, member)` for every field, and these write and read the JSON object of those
// keys (a path as its string). The TOML readers go through the same list.
#include <filesystem>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"

namespace evoopt {

template <typename Spec>
nlohmann::json fields_to_json(const Spec& spec) {
  nlohmann::json j = nlohmann::json::object();
  Spec::fields(spec, [&](const char* key, const auto& field) {
    if constexpr (std::is_same_v<std::decay_t<decltype(field)>, std::filesystem::path>)
      j[key] = field.string();
    else
      j[key] = field;
  });
  return j;
}

// Every field from `j`. A missing key is an error naming `what` and the key, unless
// `optional(key)` says it may be absent (written before the field existed): then the
// field keeps its value.
template <typename Spec, typename Optional>
void fields_from_json(Spec& spec, const nlohmann::json& j, const std::string& what, Optional&& optional) {
  Spec::fields(spec, [&](const char* key, auto& field) {
    using T = std::decay_t<decltype(field)>;
    const auto it = j.find(key);
    if (it == j.end()) {
      if (optional(std::string(key))) return;
      throw Error(what + ": '" + key + "' is missing");
    }
    if constexpr (std::is_same_v<T, std::filesystem::path>)
      field = it->template get<std::string>();
    else
      field = it->template get<T>();
  });
}

}  // namespace evoopt
