#pragma once
// Reading JSON at the boundary: every file evoopt reads (genomes, config.json,
// checkpoints, lineage, run-store lines, dataset metadata) goes through here, so a
// malformed or hostile file ends with one error naming it, never a crash.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace evoopt {

// Deeper nesting than this is refused before parsing: nlohmann's printing and
// conversions recurse once per level, and 100,000 levels overflow the stack.
inline constexpr int kMaxJsonDepth = 256;

// Parses `text`; throws evoopt::Error "WHAT: malformed JSON (...)" or
// "WHAT: JSON nested deeper than 256 levels".
nlohmann::json parse_json(const std::string& text, const std::string& what);

// Reads and parses a file; errors name the file.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace evoopt
