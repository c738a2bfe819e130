#pragma once
// One schema per configuration struct. `Spec::fields(spec, visit)` calls
// `visit(key, member, info)` for every field: the key is the field's one spelling (TOML,
// config.json, and the CLI flag derived from it), the member gives its type and default, and
// `info` (schema::Info) its help line, range or allowed values, CLI flag and JSON history.
// Everything that reads or writes a configuration goes through this visit: JSON here, TOML in
// schema_toml.hpp, CLI flags in schema_cli.hpp, the Markdown reference in
// schema_reference.hpp. A field added to `fields` is in all of them.
//
// Keys: a member whose type has its own `fields` is a sub-table (config.json object, TOML
// [table]); a key with a dot ("data.dir") puts a plain member into a sub-table of that name;
// a std::vector of such a struct is an array of tables. An old spelling of a key is listed in
// the struct's `renamed()` (old → new key) and still read from TOML; config.json already
// uses the one spelling.
//
// Ranges are declarative: the struct's validate() enforces them with its own messages (and
// the rules between fields); a unit test checks that a value just outside each declared bound
// is refused by validate(), so the reference and the CLI never promise more than is accepted.
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/common/checked_json.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/limits.hpp"

namespace evoopt::schema {

// The study commands a flag belongs to.
inline constexpr unsigned kEvolve = 1, kCompare = 2;

struct Flag {
  unsigned commands = 0;
  const char* name = nullptr;  // nullptr: "--" + the key's last part, '_' → '-' ("--no-" first for a bool that defaults to true)
};

struct Info {
  const char* help = "";
  std::optional<double> min, max;  // inclusive unless *_open
  bool min_open = false, max_open = false;
  const char* max_what = nullptr;  // `max` is this limits::Limit (its "what"); the CLI checks it before converting
  const char* values = nullptr;    // allowed values, for the reference: "strong, seed"
  std::array<Flag, 2> flags{};     // at most one per command set
  // config.json: the value (JSON text) of a file written before the field existed; without
  // it the key is required; "" keeps the value the struct has. `omit_absent`: written only
  // when it differs from that value, so that such files and their fingerprints do not change.
  const char* absent = nullptr;
  bool omit_absent = false;
  bool derived = false;   // set by the program from other fields: config.json only (no TOML key, no flag, not in the reference)
  bool bool_too = false;  // an integer field whose TOML value may also be true (1) or false (0)

  Info& at_least(double v) { return min = v, min_open = false, *this; }
  Info& above(double v) { return min = v, min_open = true, *this; }
  Info& at_most(double v) { return max = v, max_open = false, *this; }
  Info& below(double v) { return max = v, max_open = true, *this; }
  Info& limit(const limits::Limit& l) { return max = static_cast<double>(l.max), max_open = false, max_what = l.what, *this; }
  Info& one_of(const char* v) { return values = v, *this; }
  Info& flag(unsigned commands, const char* name = nullptr) {
    (flags[0].commands == 0 ? flags[0] : flags[1]) = Flag{commands, name};
    return *this;
  }
  Info& since(const char* absent_json, bool omit = false) { return absent = absent_json, omit_absent = omit, *this; }
  Info& set_by_program() { return derived = true, *this; }
  Info& accepts_bool() { return bool_too = true, *this; }
};
inline Info help(const char* text) {
  Info i;
  i.help = text;
  return i;
}

struct Rename {
  const char* from;
  const char* to;
};

// ---------------------------------------------------------------- traits

struct AnyVisit {
  template <typename T>
  void operator()(const char*, T&, const Info&) const {}
};
template <typename T, typename = void>
struct has_fields : std::false_type {};
template <typename T>
struct has_fields<T, std::void_t<decltype(T::fields(std::declval<T&>(), AnyVisit{}))>> : std::true_type {};
template <typename T>
inline constexpr bool has_fields_v = has_fields<std::decay_t<T>>::value;

template <typename T, typename = void>
struct has_renamed : std::false_type {};
template <typename T>
struct has_renamed<T, std::void_t<decltype(T::renamed())>> : std::true_type {};

template <typename T>
struct is_vector : std::false_type {};
template <typename T>
struct is_vector<std::vector<T>> : std::true_type {};
template <typename T>
inline constexpr bool is_vector_v = is_vector<std::decay_t<T>>::value;
// A std::vector of a struct with fields: an array of tables.
template <typename T>
struct is_table_array : std::false_type {};
template <typename T>
struct is_table_array<std::vector<T>> : std::bool_constant<has_fields<T>::value> {};
template <typename T>
inline constexpr bool is_table_array_v = is_table_array<std::decay_t<T>>::value;

// An enum field is its name in every file: specialise with `static std::string name(T)`,
// `static T parse(const std::string&)` (throws evoopt::Error) and `static constexpr const char* values`.
template <typename T>
struct EnumText;

template <typename Spec>
std::vector<Rename> renamed_keys() {
  if constexpr (has_renamed<std::decay_t<Spec>>::value)
    return std::decay_t<Spec>::renamed();
  else
    return {};
}

// The type's name in the reference.
template <typename T>
std::string type_name() {
  if constexpr (std::is_same_v<T, bool>)
    return "boolean";
  else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::filesystem::path> || std::is_enum_v<T>)
    return "string";
  else if constexpr (std::is_integral_v<T>)
    return "integer";
  else if constexpr (std::is_floating_point_v<T>)
    return "number";
  else if constexpr (is_vector<T>::value)
    return "array of " + type_name<typename T::value_type>() + "s";
  else
    return "table";
}

// ---------------------------------------------------------------- walking

// `visit(path, member, info)` for every plain field of `spec` and its sub-tables, with the
// field's full dotted path ("ga.racing.keep"); arrays of tables are plain fields here.
template <typename Spec, typename Visit>
void walk(Spec& spec, Visit&& visit, const std::string& prefix = "") {
  std::decay_t<Spec>::fields(spec, [&](const char* key, auto& field, const Info& info) {
    if constexpr (has_fields_v<decltype(field)>)
      walk(field, visit, prefix + key + ".");
    else
      visit(prefix + key, field, info);
  });
}

// The key's last part: "data.dir" → "dir".
inline std::string leaf(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

// ---------------------------------------------------------------- JSON

template <typename Spec>
nlohmann::json to_json(const Spec& spec);
template <typename Spec>
void from_json(Spec& spec, const nlohmann::json& j, const std::string& prefix);

template <typename T>
nlohmann::json value_to_json(const T& v) {
  if constexpr (has_fields_v<T>) {
    return to_json(v);
  } else if constexpr (is_vector<T>::value) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& e : v) a.push_back(value_to_json(e));
    return a;
  } else if constexpr (std::is_enum_v<T>) {
    return EnumText<T>::name(v);
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    return v.string();
  } else {
    return v;
  }
}

// `j` into `out`; errors name `where` (a JSON pointer, or a prefix the caller chose).
template <typename T>
void value_from_json(T& out, const nlohmann::json& j, const std::string& where) {
  if constexpr (has_fields_v<T>) {
    if (!j.is_object()) throw Error(where + ": expected an object, got " + describe_json(j));
    from_json(out, j, where + "/");
  } else if constexpr (is_table_array_v<T>) {
    if (!j.is_array()) throw Error(where + ": expected an array, got " + describe_json(j));
    out.clear();
    for (std::size_t i = 0; i < j.size(); ++i) {
      typename T::value_type e;
      value_from_json(e, j[i], where + "/" + std::to_string(i));
      out.push_back(std::move(e));
    }
  } else if constexpr (std::is_enum_v<T>) {
    const std::string name = json_as<std::string>(j, where);
    try {
      out = EnumText<T>::parse(name);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    out = json_as<std::string>(j, where);
  } else {
    out = json_as<T>(j, where);
  }
}

// The JSON object of `spec`'s fields (a dotted key inside its sub-object).
template <typename Spec>
nlohmann::json to_json(const Spec& spec) {
  nlohmann::json j = nlohmann::json::object();
  std::decay_t<Spec>::fields(spec, [&](const char* key, const auto& field, const Info& info) {
    nlohmann::json v = value_to_json(field);
    if (info.omit_absent && *info.absent != '\0' && v == nlohmann::json::parse(info.absent)) return;
    std::string pointer = "/" + std::string(key);
    for (char& c : pointer)
      if (c == '.') c = '/';
    j[nlohmann::json::json_pointer(pointer)] = std::move(v);
  });
  return j;
}

// Every field of `spec` from the object `j`; keys `j` has beyond them are left alone.
// Errors are "PREFIXKEY: problem" with the key as a path ("/data/dir: missing" for prefix "/").
template <typename Spec>
void from_json(Spec& spec, const nlohmann::json& j, const std::string& prefix) {
  if (!j.is_object()) throw Error(prefix + ": expected an object, got " + describe_json(j));
  std::decay_t<Spec>::fields(spec, [&](const char* key, auto& field, const Info& info) {
    const nlohmann::json* node = &j;
    std::string where = prefix;
    std::string rest = key;
    for (;;) {
      const auto dot = rest.find('.');
      const std::string part = rest.substr(0, dot);
      const auto it = node->find(part);
      if (it == node->end()) {
        if (info.absent == nullptr) throw Error(where + part + ": missing");
        if (*info.absent == '\0') return;
        value_from_json(field, nlohmann::json::parse(info.absent), where + part);
        return;
      }
      node = &*it;
      where += part;
      if (dot == std::string::npos) break;
      if (!node->is_object()) throw Error(where + ": expected an object, got " + describe_json(*node));
      where += "/";
      rest = rest.substr(dot + 1);
    }
    value_from_json(field, *node, where);
  });
}

}  // namespace evoopt::schema
