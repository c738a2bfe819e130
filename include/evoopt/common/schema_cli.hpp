#pragma once
// CLI11 flags through a schema (common/schema.hpp): a field with a flag for a command gets
// `--KEY` (its key's last part with '_' → '-') or the name its Info gives; a boolean field's
// flag sets it to true, or to false when the flag's name starts with "--no-". Integer flags
// are checked before CLI11 converts them (decimal digits only, and the field's limit).
// Header-only: the CLI and the tests use it; the library never parses argv.
#include <charconv>
#include <limits>
#include <string>

#include <CLI/CLI.hpp>

#include "evoopt/common/limits.hpp"
#include "evoopt/common/schema.hpp"

namespace evoopt::schema {

// An integer flag, checked before CLI11 converts it: decimal digits only (CLI11 alone reads
// "010" as octal 8 and "0x10" as hex, and saturates 99999999999999999999 to 2^63 − 1), at
// least `min`, and at most the library's limit on that size (common/limits.hpp), so that
// no value wraps, saturates or exceeds what the machine can hold. The value is handed on
// without leading zeros.
inline CLI::Validator integer_flag(long long min, const limits::Limit& limit) {
  return CLI::Validator(
      [min, limit](std::string& value) -> std::string {
        const bool negative = !value.empty() && value[0] == '-';
        const std::string digits = value.substr(negative ? 1 : 0);
        if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return "must be a decimal integer, got '" + value + "'";
        long long v = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec == std::errc::result_out_of_range) {
          if (negative) return "must be >= " + std::to_string(min) + ", got " + value;
          return limits::exceeds(value, limit);
        }
        if (ec != std::errc() || end != value.data() + value.size()) return "must be a decimal integer, got '" + value + "'";
        if (v < min) return "must be >= " + std::to_string(min) + ", got " + value;
        if (v > limit.max) return limits::exceeds(value, limit);
        value = std::to_string(v);
        return std::string();
      },
      "INT");
}
// For flags whose lower bound the library checks with its own message (a study's sizes):
// only what the C++ type holds.
template <typename T>
CLI::Validator integer_flag(const limits::Limit& limit) {
  return integer_flag(static_cast<long long>(std::numeric_limits<T>::min()), limit);
}

// Seeds are 0 … 2^64−1 written as decimal digits: "-1" and "2^70" are errors, never wrapped.
// A transform: the value is handed on without leading zeros.
inline CLI::Validator seed_value() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        const bool digits = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
        if (!digits) return "must be an integer in 0 … 18446744073709551615, got '" + value + "'";
        const std::string max = "18446744073709551615";
        const std::string v = value.substr(std::min(value.find_first_not_of('0'), value.size() - 1));
        if (v.size() > max.size() || (v.size() == max.size() && v > max)) return "must be at most 18446744073709551615 (2^64 − 1), got " + value;
        value = v;  // decimal: CLI11 alone would read "010" as octal 8
        return std::string();
      },
      "SEED");
}

// The flag of the field at `path` for `command`, or "" when it has none there. `default_true`:
// the struct's default of a boolean field (its derived flag is then "--no-KEY").
inline std::string flag_name(const std::string& path, const Info& info, unsigned command, bool default_true) {
  for (const Flag& f : info.flags) {
    if ((f.commands & command) == 0) continue;
    if (f.name != nullptr) return f.name;
    std::string n = leaf(path);
    for (char& c : n)
      if (c == '_') c = '-';
    return (default_true ? "--no-" : "--") + n;
  }
  return "";
}

// The default as the reference and --help show it: the value's JSON text.
template <typename T>
std::string default_text(const T& v) {
  return value_to_json(v).dump();
}

// Adds the flags of `command` for every field of `defaults`' schema to `app` (the values stay
// in CLI11's results until apply_flags).
template <typename Spec>
void add_flags(CLI::App& app, const Spec& defaults, unsigned command) {
  walk(defaults, [&](const std::string& path, const auto& field, const Info& info) {
    using T = std::decay_t<decltype(field)>;
    bool default_true = false;
    if constexpr (std::is_same_v<T, bool>) default_true = field;
    const std::string name = flag_name(path, info, command, default_true);
    if (name.empty()) return;
    std::string help = std::string(info.help) + (std::is_same_v<T, bool> ? "" : " (default " + default_text(field) + ")");
    if (name.rfind("--no-", 0) == 0) help = "Turn off: " + help;
    if constexpr (std::is_same_v<T, bool>) {
      app.add_flag(name)->description(help);  // (name, lvalue) would bind the string as the flag's variable
    } else {
      CLI::Option* o = app.add_option(name)->description(help);  // likewise
      if constexpr (is_vector<T>::value) {
        o->expected(1, CLI::detail::expected_max_vector_size)->allow_extra_args();
      } else if constexpr (std::is_same_v<T, std::uint64_t>) {
        o->transform(seed_value());
      } else if constexpr (std::is_integral_v<T>) {
        const limits::Limit limit = info.max_what != nullptr ? limits::Limit{static_cast<std::int64_t>(*info.max), info.max_what}
                                                             : limits::Limit{std::numeric_limits<T>::max(), "the field's type"};
        o->transform(integer_flag<T>(limit));
      } else if constexpr (std::is_enum_v<T> || std::is_same_v<T, std::string>) {
        o->type_name("TEXT");
      }
    }
  });
}

// Sets every field of `spec` whose flag for `command` was given on `app`, as given (a value
// the schema's validate() refuses is refused there, with its message).
template <typename Spec>
void apply_flags(Spec& spec, const CLI::App& app, unsigned command) {
  const Spec defaults{};
  walk(spec, [&](const std::string& path, auto& field, const Info& info) {
    using T = std::decay_t<decltype(field)>;
    bool default_true = false;
    if constexpr (std::is_same_v<T, bool>) {
      // The flag's name comes from the struct's default, as add_flags saw it.
      walk(defaults, [&](const std::string& p, const auto& d, const Info&) {
        if constexpr (std::is_same_v<std::decay_t<decltype(d)>, bool>)
          if (p == path) default_true = d;
      });
    }
    const std::string name = flag_name(path, info, command, default_true);
    if (name.empty()) return;
    const CLI::Option* o = app.get_option_no_throw(name);
    if (o == nullptr || o->count() == 0) return;
    if constexpr (is_table_array_v<T>)
      return;  // arrays of tables have no flag
    else if constexpr (std::is_same_v<T, bool>)
      field = name.rfind("--no-", 0) != 0;
    else if constexpr (std::is_enum_v<T>)
      field = EnumText<T>::parse(o->as<std::string>());
    else
      field = o->as<T>();
  });
}

}  // namespace evoopt::schema
