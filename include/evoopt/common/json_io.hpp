#pragma once
// Reading JSON at the boundary: every file evoopt reads (genomes, config.json,
// checkpoints, lineage, run-store lines, dataset metadata) goes through here, so a
// malformed or hostile file ends with one error naming it, never a crash.
//
// Two ways in. parse_json / read_json_file give the parsed value. JsonView is the typed
// reader for files with a known layout (a run directory's JSON): every lookup knows the
// file and the key path (an RFC 6901 JSON pointer), so a missing key, a wrong type or an
// out-of-range number ends with one line such as
//   RUN/summary.json: /final_test/overall_mean: expected a number, got a string "x"
// Code that takes a plain nlohmann::json (the from_json functions) runs under
// JsonView::convert, which turns its nlohmann or evoopt errors into the same form; the
// project builds with JSON_DIAGNOSTICS, so nlohmann's own errors carry the key path too.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"

namespace evoopt {

// Deeper nesting than this is refused while parsing: nlohmann's printing and
// conversions recurse once per level, and 100,000 levels overflow the stack.
inline constexpr int kMaxJsonDepth = 256;

// Parses `text`. Throws evoopt::Error "WHAT: malformed JSON near /POINTER (...)",
// "WHAT: JSON nested deeper than 256 levels" or "WHAT: /POINTER: duplicate key" (an
// object that repeats a key is refused: which of its values counts would be a guess).
nlohmann::json parse_json(const std::string& text, const std::string& what);

// Reads and parses a file; errors name the file.
nlohmann::json read_json_file(const std::filesystem::path& path);

// An error already located by a JsonView (file and key path): JsonView::convert passes it on
// unchanged.
class JsonError : public Error {
 public:
  using Error::Error;
};

// A value inside a parsed document, with where it is: the document's source (a file name,
// or what the text was) and the JSON pointer of the value in it. Cheap to copy; it keeps its
// document alive. Every accessor that finds the document not as expected throws JsonError
// "SOURCE: POINTER: PROBLEM" (one line; POINTER left out at the document's root).
class JsonView {
 public:
  // The whole of `doc`, read from `source`.
  JsonView(nlohmann::json doc, std::string source);

  const nlohmann::json& raw() const { return *node_; }
  const std::string& source() const { return doc_->source; }
  const std::string& pointer() const { return pointer_; }  // "" at the root, else "/a/0/b"
  std::string where() const;                               // "SOURCE" or "SOURCE: POINTER"

  bool is_null() const { return node_->is_null(); }
  bool is_object() const { return node_->is_object(); }
  bool is_array() const { return node_->is_array(); }
  bool is_number() const { return node_->is_number(); }
  bool is_string() const { return node_->is_string(); }

  // Objects. `contains` and `find` require an object; `find` gives nullopt for an absent key
  // (a key present with null is present).
  bool contains(const std::string& key) const;
  std::optional<JsonView> find(const std::string& key) const;
  JsonView at(const std::string& key) const;  // "POINTER/key: missing" when absent
  // The members in key order.
  std::vector<std::pair<std::string, JsonView>> members() const;

  // Arrays.
  std::size_t size() const;  // of an array or object
  JsonView at(std::size_t index) const;
  std::vector<JsonView> elements() const;

  // The value as T: bool, std::string, std::filesystem::path (a string), a floating type (a
  // finite number), an integral type (a JSON integer within T's range), std::vector<U>,
  // std::map<std::string, U>, std::optional<U> (null: nullopt), nlohmann::json (as it is).
  template <typename T>
  T get() const;
  template <typename T>
  T get(const std::string& key) const {
    return at(key).get<T>();
  }
  // An absent key gives `fallback`; a present one must be a T.
  template <typename T>
  T get_or(const std::string& key, T fallback) const {
    if (auto v = find(key)) return v->get<T>();
    return fallback;
  }
  // A number in [lo, hi]: "expected a number in [lo, hi], got ...".
  template <typename T>
  T get_in(T lo, T hi) const;
  template <typename T>
  T get_in(const std::string& key, T lo, T hi) const {
    return at(key).get_in<T>(lo, hi);
  }

  // `f(raw())` for code that reads a plain nlohmann::json (from_json functions): its
  // nlohmann and evoopt::Error exceptions become JsonError naming this file and the key path
  // (the one nlohmann's diagnostics give when it lies in this document, else this value's).
  template <typename F>
  auto convert(F&& f) const -> decltype(f(std::declval<const nlohmann::json&>())) {
    try {
      return std::forward<F>(f)(*node_);
    } catch (const JsonError&) {
      throw;
    } catch (const nlohmann::json::exception& e) {
      fail_from(e);
    } catch (const Error& e) {
      fail(e.what());
    }
  }

  // Throws JsonError "where(): problem".
  [[noreturn]] void fail(const std::string& problem) const;
  // "expected WANTED, got <this value>".
  [[noreturn]] void fail_expected(const std::string& wanted) const;

 private:
  struct Doc {
    nlohmann::json root;
    std::string source;
  };
  JsonView(std::shared_ptr<const Doc> doc, const nlohmann::json* node, std::string pointer)
      : doc_(std::move(doc)), node_(node), pointer_(std::move(pointer)) {}
  JsonView child(const std::string& key, const nlohmann::json& node) const;
  void require_object() const;
  [[noreturn]] void fail_from(const nlohmann::json::exception& e) const;
  template <typename T>
  struct Tag {};
  template <typename T>
  T get_as(Tag<T>) const;
  template <typename U>
  std::vector<U> get_as(Tag<std::vector<U>>) const;
  template <typename U>
  std::map<std::string, U> get_as(Tag<std::map<std::string, U>>) const;
  template <typename U>
  std::optional<U> get_as(Tag<std::optional<U>>) const;

  std::shared_ptr<const Doc> doc_;
  const nlohmann::json* node_ = nullptr;
  std::string pointer_;
};

// A file read and parsed into a JsonView; parse errors name the file.
JsonView read_json_view(const std::filesystem::path& path);
// `text` parsed into a JsonView whose errors name `what`.
JsonView parse_json_view(const std::string& text, const std::string& what);

// "a string \"x\"", "an integer 3", "a number 0.5", "true", "null", "an object", "an array"
// (strings and numbers shortened to one line of at most 40 characters).
std::string describe_json(const nlohmann::json& j);

// ------------------------------------------------------------------ templates

template <typename T>
T JsonView::get() const {
  return get_as(Tag<T>{});
}

template <typename T>
T JsonView::get_as(Tag<T>) const {
  const nlohmann::json& j = *node_;
  if constexpr (std::is_same_v<T, nlohmann::json>) {
    return j;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) fail_expected("true or false");
    return j.get<bool>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) fail_expected("a string");
    return j.get<std::string>();
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    if (!j.is_string()) fail_expected("a string (a path)");
    return std::filesystem::path(j.get<std::string>());
  } else if constexpr (std::is_floating_point_v<T>) {
    // A JSON number too large for a double parses to infinity: refused like any non-number.
    if (!j.is_number() || !std::isfinite(j.get<double>()) || std::abs(j.get<double>()) > static_cast<double>(std::numeric_limits<T>::max()))
      fail_expected("a number");
    return static_cast<T>(j.get<double>());
  } else if constexpr (std::is_integral_v<T>) {
    using Limits = std::numeric_limits<T>;
    const auto range = [] { return "an integer in [" + std::to_string(Limits::min()) + ", " + std::to_string(Limits::max()) + "]"; };
    if (j.is_number_unsigned()) {
      const auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(Limits::max())) fail_expected(range());
      return static_cast<T>(u);
    }
    if (j.is_number_integer()) {
      const auto s = j.get<std::int64_t>();
      if constexpr (std::is_signed_v<T>) {
        if (s < static_cast<std::int64_t>(Limits::min()) || s > static_cast<std::int64_t>(Limits::max())) fail_expected(range());
      } else {
        if (s < 0 || static_cast<std::uint64_t>(s) > static_cast<std::uint64_t>(Limits::max())) fail_expected(range());
      }
      return static_cast<T>(s);
    }
    fail_expected(range());
  } else {
    static_assert(sizeof(T) == 0, "JsonView::get: unsupported type");
  }
}

template <typename U>
std::vector<U> JsonView::get_as(Tag<std::vector<U>>) const {
  if (!node_->is_array()) fail_expected("an array");
  std::vector<U> out;
  out.reserve(node_->size());
  for (std::size_t i = 0; i < node_->size(); ++i) out.push_back(at(i).get<U>());
  return out;
}

template <typename U>
std::map<std::string, U> JsonView::get_as(Tag<std::map<std::string, U>>) const {
  if (!node_->is_object()) fail_expected("an object");
  std::map<std::string, U> out;
  for (const auto& [k, v] : node_->items()) out.emplace(k, child(k, v).template get<U>());
  return out;
}

template <typename U>
std::optional<U> JsonView::get_as(Tag<std::optional<U>>) const {
  if (node_->is_null()) return std::nullopt;
  return get<U>();
}

template <typename T>
T JsonView::get_in(T lo, T hi) const {
  const T v = get<T>();
  if (!(v >= lo && v <= hi)) {
    std::string range;
    if constexpr (std::is_integral_v<T>)
      range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    else
      range = "[" + nlohmann::json(lo).dump() + ", " + nlohmann::json(hi).dump() + "]";
    fail_expected((std::is_integral_v<T> ? "an integer in " : "a number in ") + range);
  }
  return v;
}

}  // namespace evoopt
