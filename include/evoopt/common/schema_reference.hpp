#pragma once
// The Markdown reference of a schema (common/schema.hpp): one table per TOML table with every
// key, its type, its default (the struct's), its allowed range or values, its CLI flags and
// its help line, then the old spellings still read. docs/config-reference.md is this output
// for ExperimentConfig (`evoopt config reference`); scripts/check-reference.sh keeps it so.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "evoopt/common/schema.hpp"
#include "evoopt/common/schema_cli.hpp"

namespace evoopt::schema {

namespace detail {
inline std::string number_text(double v) {
  if (std::abs(v) < 9.007199254740992e15 && v == std::floor(v)) return std::to_string(static_cast<long long>(v));
  return fmt::format("{}", v);
}

inline std::string range_text(const Info& info) {
  std::string s;
  if (info.min && info.max) {
    s = std::string(info.min_open ? "(" : "[") + number_text(*info.min) + ", " + number_text(*info.max) + (info.max_open ? ")" : "]");
  } else if (info.min) {
    s = (info.min_open ? "> " : "≥ ") + number_text(*info.min);
  } else if (info.max) {
    s = (info.max_open ? "< " : "≤ ") + number_text(*info.max);
  }
  if (info.values != nullptr) s += (s.empty() ? "" : "; ") + std::string(info.values);
  return s;
}

template <typename T>
std::string flags_text(const std::string& path, const Info& info, const T& value) {
  bool default_true = false;
  if constexpr (std::is_same_v<T, bool>) default_true = value;
  const std::string evolve = flag_name(path, info, kEvolve, default_true);
  const std::string compare = flag_name(path, info, kCompare, default_true);
  if (evolve == compare) return evolve.empty() ? "" : "`" + evolve + "`";
  std::string s;
  if (!evolve.empty()) s = "`" + evolve + "` (evolve)";
  if (!compare.empty()) s += (s.empty() ? "" : ", ") + std::string("`") + compare + "` (compare)";
  return s;
}

inline std::string cell(std::string s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

struct Section {
  std::string title;
  std::vector<std::string> rows;
};

template <typename Spec>
void collect(const Spec& spec, const std::string& prefix, const std::string& array_title, std::vector<Section>& sections,
             std::vector<std::pair<std::string, std::string>>& renames) {
  auto section = [&](const std::string& title) -> Section& {
    for (auto& s : sections)
      if (s.title == title) return s;
    sections.push_back({title, {}});
    return sections.back();
  };
  for (const Rename& r : renamed_keys<Spec>()) renames.emplace_back(prefix + r.from, prefix + r.to);
  std::decay_t<Spec>::fields(spec, [&](const char* key, const auto& field, const Info& info) {
    using T = std::decay_t<decltype(field)>;
    if (info.derived) return;
    const std::string path = prefix + key;
    if constexpr (has_fields_v<T>) {
      collect(field, path + ".", "", sections, renames);
    } else if constexpr (is_table_array_v<T>) {
      section(array_title.empty() ? (prefix.empty() ? "top level" : "[" + prefix.substr(0, prefix.size() - 1) + "]") : array_title);
      collect(typename T::value_type{}, "", "[[" + path + "]]", sections, renames);
      auto& s = section(array_title.empty() ? (prefix.empty() ? "top level" : "[" + prefix.substr(0, prefix.size() - 1) + "]") : array_title);
      s.rows.push_back("| `" + leaf(path) + "` | array of tables | `[]` | | | " + cell(info.help) + " (see `[[" + path + "]]`) |");
    } else {
      const auto dot = path.rfind('.');
      const std::string title = !array_title.empty() ? array_title : dot == std::string::npos ? "top level" : "[" + path.substr(0, dot) + "]";
      section(title).rows.push_back("| `" + leaf(path) + "` | " + type_name<T>() + " | `" + cell(default_text(field)) + "` | " +
                                    cell(range_text(info)) + " | " + flags_text(path, info, field) + " | " + cell(info.help) + " |");
    }
  });
}
}  // namespace detail

// Markdown: a "### TITLE" and a table per TOML table of `defaults`' schema, then the renamed keys.
template <typename Spec>
std::string reference_markdown(const Spec& defaults) {
  std::vector<detail::Section> sections;
  std::vector<std::pair<std::string, std::string>> renames;
  detail::collect(defaults, "", "", sections, renames);
  std::string out;
  for (const auto& s : sections) {
    out += "### " + (s.title == "top level" ? std::string("Top level") : "`" + s.title + "`") + "\n\n";
    out += "| key | type | default | allowed | flag | meaning |\n|---|---|---|---|---|---|\n";
    for (const auto& r : s.rows) out += r + "\n";
    out += "\n";
  }
  if (!renames.empty()) {
    out += "### Old spellings, still read from TOML\n\n| old key | key |\n|---|---|\n";
    for (const auto& [from, to] : renames) out += "| `" + from + "` | `" + to + "` |\n";
    out += "\n";
  }
  return out;
}

}  // namespace evoopt::schema
