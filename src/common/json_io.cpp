#include "evoopt/common/json_io.hpp"

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"

namespace evoopt {

nlohmann::json parse_json(const std::string& text, const std::string& what) {
  // Nesting depth outside strings (escaped quotes inside strings skipped).
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) throw Error(what + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": malformed JSON (" + std::string(e.what()) + ")");
  }
}

nlohmann::json read_json_file(const std::filesystem::path& path) { return parse_json(read_text_file(path), path.string()); }

}  // namespace evoopt
