#include "evoopt/common/run_dir.hpp"

#include <fmt/format.h>

#include "evoopt/common/files.hpp"

namespace evoopt {

std::filesystem::path RunDirectory::operator/(const RunFile& f) const {
  if (dir_.empty()) return {};
  return dir_ / std::string(f.name);
}

bool RunDirectory::has(const RunFile& f) const { return !dir_.empty() && std::filesystem::exists(*this / f); }

nlohmann::json RunDirectory::header(const RunFile& f) {
  if (f.format.empty()) return nlohmann::json::object();
  return {{"format", std::string(f.format)}, {"version", f.version}};
}

void RunDirectory::check_header(const RunFile& f, const JsonView& doc) {
  if (f.format.empty()) return;
  if (!doc.is_object() || doc.get_or<std::string>("format", "") != f.format)
    doc.fail(fmt::format("not an evoopt {} (format field missing or different)", f.what));
  const JsonView version = doc.at("version");
  const nlohmann::json& v = version.raw();
  const bool integer = v.is_number_integer();
  if (integer && v.get<std::int64_t>() >= f.min_version && v.get<std::int64_t>() <= f.version) return;
  const std::string readable = f.min_version == f.version ? std::to_string(f.version) : fmt::format("{} to {}", f.min_version, f.version);
  const bool newer = integer && v.get<std::int64_t>() > f.version;
  version.fail(
      fmt::format("{} version {} is not one this evoopt reads ({}){}", f.format, v.dump(), readable, newer ? ": written by a newer evoopt" : ""));
}

JsonView RunDirectory::read(const RunFile& f) const {
  JsonView doc = read_json_view(*this / f);
  check_header(f, doc);
  return doc;
}

std::optional<JsonView> RunDirectory::read_if_present(const RunFile& f) const {
  if (!has(f)) return std::nullopt;
  return read(f);
}

void RunDirectory::write_json(const RunFile& f, nlohmann::json body, int indent) const {
  body.update(header(f));
  write_file_atomic(*this / f, body.dump(indent) + "\n");
}

void RunDirectory::write_text(const RunFile& f, const std::string& text) const { write_file_atomic(*this / f, text); }

}  // namespace evoopt
