#pragma once
// TOML reading through a schema (common/schema.hpp): every key of a table is a field's key,
// a sub-table's, or an old spelling in the struct's `renamed()`; anything else is an error
// naming the file and the key. Values are read strictly: a TOML value must have the field's
// type (no integer where a boolean goes), and an integer must fit the field
// (population = 4294967298 is an error, not 2).
#include <limits>
#include <set>
#include <string>
#include <type_traits>

#include <toml++/toml.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/schema.hpp"

namespace evoopt::schema {

template <typename T>
T toml_scalar(const toml::node& node, const std::string& key, const std::string& file) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (const auto* v = node.as_string()) return v->get();
    throw Error(file + ": " + key + " must be a string");
  } else if constexpr (std::is_same_v<T, bool>) {
    if (const auto* v = node.as_boolean()) return v->get();
    throw Error(file + ": " + key + " must be true or false");
  } else if constexpr (std::is_floating_point_v<T>) {
    if (const auto* v = node.as_floating_point()) return v->get();
    if (const auto* v = node.as_integer()) return static_cast<T>(v->get());
    throw Error(file + ": " + key + " must be a number");
  } else {
    const auto* v = node.as_integer();
    if (v == nullptr) throw Error(file + ": " + key + " must be an integer");
    const std::int64_t x = v->get();
    if (x < 0 && std::is_unsigned_v<T>) throw Error(file + ": " + key + " must be >= 0, got " + std::to_string(x));
    if constexpr (!std::is_same_v<T, std::int64_t> && !std::is_same_v<T, std::uint64_t>) {
      if (x < static_cast<std::int64_t>(std::numeric_limits<T>::min()) || x > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
        throw Error(file + ": " + key + " = " + std::to_string(x) + " is out of range");
    }
    return static_cast<T>(x);
  }
}

// Where a table is read from, for errors and for refusing one field set twice (an old and a
// new spelling of one key).
struct TomlContext {
  std::string file;
  std::set<std::string> seen;  // full keys set so far
};

template <typename Spec>
void read_toml_table(Spec& spec, const toml::table& table, const std::string& name_prefix, TomlContext& ctx);

// A TOML value into `out`; `name` is the key as the file spells it ("ga.racing_keep", "task[0].name").
template <typename T>
void value_from_toml(T& out, const toml::node& node, const std::string& name, const Info& info, TomlContext& ctx) {
  if constexpr (has_fields_v<T>) {
    const toml::table* t = node.as_table();
    if (t == nullptr) throw Error(ctx.file + ": " + name + " must be a table");
    read_toml_table(out, *t, name + ".", ctx);
  } else if constexpr (is_table_array_v<T>) {
    const toml::array* arr = node.as_array();
    if (arr == nullptr) throw Error(ctx.file + ": " + name + " must be an array of tables ([[" + name + "]])");
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const std::string at = name + "[" + std::to_string(i) + "]";
      const toml::table* t = arr->get(i)->as_table();
      if (t == nullptr) throw Error(ctx.file + ": " + at + " must be a table ([[" + name + "]])");
      typename T::value_type e;
      read_toml_table(e, *t, at + ".", ctx);
      out.push_back(std::move(e));
    }
  } else if constexpr (is_vector<T>::value) {
    const toml::array* arr = node.as_array();
    if (arr == nullptr) throw Error(ctx.file + ": " + name + " must be an array");
    T v;
    for (const auto& e : *arr) {
      typename T::value_type x;
      value_from_toml(x, e, name + "[]", info, ctx);
      v.push_back(std::move(x));
    }
    out = std::move(v);
  } else if constexpr (std::is_enum_v<T>) {
    const std::string text = toml_scalar<std::string>(node, name, ctx.file);
    try {
      out = EnumText<T>::parse(text);
    } catch (const Error& e) {
      throw Error(ctx.file + ": " + name + ": " + e.what());
    }
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    out = toml_scalar<std::string>(node, name, ctx.file);
  } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (info.bool_too && node.is_boolean())
      out = node.as_boolean()->get() ? 1 : 0;
    else
      out = toml_scalar<T>(node, name, ctx.file);
  } else {
    out = toml_scalar<T>(node, name, ctx.file);
  }
}

namespace detail {
// Sets the field whose key is `path` (or, through a sub-table field, whose key ends it) from
// `node`; false when `spec` has none.
template <typename Spec>
bool read_toml_path(Spec& spec, const std::string& path, const toml::node& node, const std::string& name, const std::string& full, TomlContext& ctx) {
  bool done = false;
  std::decay_t<Spec>::fields(spec, [&](const char* key, auto& field, const Info& info) {
    if (done || info.derived) return;
    const std::string k = key;
    if (path == k) {
      if (!ctx.seen.insert(full).second) throw Error(ctx.file + ": " + name + " sets " + full + ", which is already set (two spellings of one key)");
      value_from_toml(field, node, name, info, ctx);
      done = true;
    } else if constexpr (has_fields_v<decltype(field)>) {
      if (path.rfind(k + ".", 0) == 0) done = read_toml_path(field, path.substr(k.size() + 1), node, name, full, ctx);
    }
  });
  return done;
}

// Whether some field key of `spec` starts with `prefix` ("data." for the keys "data.dir", ...).
template <typename Spec>
bool has_key_prefix(Spec& spec, const std::string& prefix) {
  bool found = false;
  std::decay_t<Spec>::fields(spec, [&](const char* key, auto&, const Info& info) {
    if (!info.derived && std::string(key).rfind(prefix, 0) == 0) found = true;
  });
  return found;
}

template <typename Spec>
void read_toml_entries(Spec& spec, const toml::table& table, const std::string& local, const std::string& name_prefix, TomlContext& ctx) {
  for (auto&& [k, node] : table) {
    const std::string path = local + std::string(k.str());
    const std::string name = name_prefix + std::string(k.str());
    // An old spelling first where it is the new key of a sub-table given as a value
    // (`racing = true` for racing.enabled).
    const std::vector<Rename> renames = renamed_keys<Spec>();
    const Rename* rename = nullptr;
    for (const auto& r : renames)
      if (path == r.from) rename = &r;
    const bool sub_table_value = rename != nullptr && !node.is_table();
    if (!sub_table_value && read_toml_path(spec, path, node, name, name_prefix.substr(0, name_prefix.size() - local.size()) + path, ctx)) continue;
    if (node.is_table() && has_key_prefix(spec, path + ".")) {
      read_toml_entries(spec, *node.as_table(), path + ".", name + ".", ctx);
      continue;
    }
    if (rename != nullptr) {
      const std::string full = name_prefix.substr(0, name_prefix.size() - local.size()) + rename->to;
      if (!read_toml_path(spec, rename->to, node, name, full, ctx)) throw Error(ctx.file + ": unknown key " + name);
      continue;
    }
    throw Error(ctx.file + ": unknown key " + name);
  }
}
}  // namespace detail

// Every entry of `table` into `spec`; `name_prefix` is the table's key path in the file
// ("ga.", or "" for the top level).
template <typename Spec>
void read_toml_table(Spec& spec, const toml::table& table, const std::string& name_prefix, TomlContext& ctx) {
  detail::read_toml_entries(spec, table, "", name_prefix, ctx);
}

}  // namespace evoopt::schema
