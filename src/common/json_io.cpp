#include "evoopt/common/json_io.hpp"

#include <cmath>
#include <map>

#include "evoopt/common/files.hpp"

namespace evoopt {
using nlohmann::json;

namespace {

// `s` on one line: control characters as \xHH.
std::string one_line(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

// A JSON pointer token (RFC 6901): '~' as "~0", '/' as "~1".
std::string pointer_token(const std::string& key) {
  std::string out;
  for (const char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

// nlohmann's DOM builder, plus what the plain parse does not check: nesting depth, and keys
// repeated within an object (nlohmann keeps the last). The builder inserts each key into
// its object, so a key that leaves the object's size unchanged was there already. The
// open containers are tracked to name where a parse error or duplicate is.
class CheckingSax {
 public:
  CheckingSax(json& root, const std::string& what) : dom_(root, /*allow_exceptions=*/true), root_(root), what_(what) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) { return dom_.number_float(v, s); }
  bool string(json::string_t& v) { return dom_.string(v); }
  bool binary(json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) {
    dom_.start_object(n);
    open(/*object=*/true);
    return true;
  }
  bool key(json::string_t& k) {
    Frame& f = frames_.back();
    const std::size_t before = f.node->size();
    f.key = k;
    f.has_key = true;
    dom_.key(k);
    if (f.node->size() == before) throw Error(what_ + ": " + one_line(pointer()) + ": duplicate key");
    return true;
  }
  bool end_object() {
    frames_.pop_back();
    return dom_.end_object();
  }
  bool start_array(std::size_t n) {
    dom_.start_array(n);
    open(/*object=*/false);
    return true;
  }
  bool end_array() {
    frames_.pop_back();
    return dom_.end_array();
  }
  template <typename Exception>
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/, const Exception& ex) {
    std::string msg = ex.what();
    if (msg.rfind("[json.exception.", 0) == 0 && msg.find("] ") != std::string::npos) msg = msg.substr(msg.find("] ") + 2);
    const std::string at = pointer();
    throw Error(what_ + ": malformed JSON" + (at.empty() ? "" : " near " + one_line(at)) + " (" + one_line(msg) + ")");
  }

 private:
  struct Frame {
    json* node;
    bool object;
    bool has_key = false;
    std::string key;  // an object's latest key
  };

  void open(bool object) {
    if (static_cast<int>(frames_.size()) >= kMaxJsonDepth)
      throw Error(what_ + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    json* node = &root_;
    if (!frames_.empty()) {
      Frame& parent = frames_.back();
      node = parent.object ? &parent.node->find(parent.key).value() : &parent.node->back();
    }
    frames_.push_back(Frame{node, object, false, {}});
  }

  // Where the parser is: the open containers' keys and indices.
  std::string pointer() const {
    std::string p;
    for (std::size_t i = 0; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      if (f.object) {
        if (f.has_key) p += "/" + pointer_token(f.key);
      } else {
        const std::size_t n = f.node->size();
        // An inner container is the array's last element; at the top, the next one is read.
        p += "/" + std::to_string(i + 1 < frames_.size() && n > 0 ? n - 1 : n);
      }
    }
    return p;
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  json& root_;
  const std::string& what_;
  std::vector<Frame> frames_;
};

}  // namespace

json parse_json(const std::string& text, const std::string& what) {
  json result;
  CheckingSax sax(result, what);
  try {
    json::sax_parse(text, &sax, json::input_format_t::json, /*strict=*/true);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": malformed JSON (" + one_line(e.what()) + ")");
  }
  return result;
}

json read_json_file(const std::filesystem::path& path) { return parse_json(read_text_file(path), path.string()); }

// ------------------------------------------------------------------ JsonView

JsonView::JsonView(json doc, std::string source) {
  auto d = std::make_shared<Doc>();
  d->root = std::move(doc);
  d->source = std::move(source);
  node_ = &d->root;
  doc_ = std::move(d);
}

std::string JsonView::where() const { return pointer_.empty() ? source() : source() + ": " + one_line(pointer_); }

void JsonView::fail(const std::string& problem) const { throw JsonError(where() + ": " + one_line(problem)); }

void JsonView::fail_expected(const std::string& wanted) const { fail("expected " + wanted + ", got " + describe_json(*node_)); }

JsonView JsonView::child(const std::string& key, const json& node) const { return JsonView(doc_, &node, pointer_ + "/" + pointer_token(key)); }

void JsonView::require_object() const {
  if (!node_->is_object()) fail_expected("an object");
}

bool JsonView::contains(const std::string& key) const {
  require_object();
  return node_->contains(key);
}

std::optional<JsonView> JsonView::find(const std::string& key) const {
  require_object();
  const auto it = node_->find(key);
  if (it == node_->end()) return std::nullopt;
  return child(key, *it);
}

JsonView JsonView::at(const std::string& key) const {
  require_object();
  const auto it = node_->find(key);
  if (it == node_->end()) throw JsonError(source() + ": " + one_line(pointer_ + "/" + pointer_token(key)) + ": missing");
  return child(key, *it);
}

std::vector<std::pair<std::string, JsonView>> JsonView::members() const {
  require_object();
  std::vector<std::pair<std::string, JsonView>> out;
  out.reserve(node_->size());
  for (const auto& [k, v] : node_->items()) out.emplace_back(k, child(k, v));
  return out;
}

std::size_t JsonView::size() const {
  if (!node_->is_array() && !node_->is_object()) fail_expected("an array or an object");
  return node_->size();
}

JsonView JsonView::at(std::size_t index) const {
  if (!node_->is_array()) fail_expected("an array");
  if (index >= node_->size())
    throw JsonError(source() + ": " + one_line(pointer_ + "/" + std::to_string(index)) + ": missing (the array has " + std::to_string(node_->size()) +
                    " elements)");
  return JsonView(doc_, &(*node_)[index], pointer_ + "/" + std::to_string(index));
}

std::vector<JsonView> JsonView::elements() const {
  if (!node_->is_array()) fail_expected("an array");
  std::vector<JsonView> out;
  out.reserve(node_->size());
  for (std::size_t i = 0; i < node_->size(); ++i) out.push_back(JsonView(doc_, &(*node_)[i], pointer_ + "/" + std::to_string(i)));
  return out;
}

void JsonView::fail_from(const json::exception& e) const {
  // "[json.exception.type_error.302] (/a/b) type must be number, but is string": the
  // parenthesised pointer (JSON_DIAGNOSTICS) is from the root of the value the error was
  // raised on; it is this document's when it names a value in it (not in a copy).
  std::string msg = e.what();
  if (msg.rfind("[json.exception.", 0) == 0 && msg.find("] ") != std::string::npos) msg = msg.substr(msg.find("] ") + 2);
  std::string at = pointer_;
  if (msg.rfind("(/", 0) == 0 && msg.find(") ") != std::string::npos) {
    const std::string diag = msg.substr(1, msg.find(") ") - 1);
    bool in_doc = false;
    try {
      const json::json_pointer p(diag);
      const bool below = diag == pointer_ || diag.rfind(pointer_ + "/", 0) == 0;
      in_doc = below && doc_->root.contains(p);
    } catch (const json::exception&) {
    }
    if (in_doc) {
      at = diag;
      msg = msg.substr(msg.find(") ") + 2);
      // type_error.302 "type must be number, but is string": the value itself is at hand.
      const std::string head = "type must be ";
      if (e.id == 302 && msg.rfind(head, 0) == 0 && msg.find(',') != std::string::npos) {
        const std::string want = msg.substr(head.size(), msg.find(',') - head.size());
        static const std::map<std::string, std::string> kinds = {{"number", "a number"}, {"string", "a string"},  {"boolean", "true or false"},
                                                                 {"array", "an array"},  {"object", "an object"}, {"null", "null"}};
        if (kinds.count(want)) msg = "expected " + kinds.at(want) + ", got " + describe_json(doc_->root.at(json::json_pointer(diag)));
      }
    }
  }
  // out_of_range.403 "key 'K' not found": the key's pointer, "missing".
  if (e.id == 403 && msg.rfind("key '", 0) == 0 && msg.size() > 15 && msg.compare(msg.size() - 11, 11, "' not found") == 0) {
    at += "/" + pointer_token(msg.substr(5, msg.size() - 16));
    msg = "missing";
  }
  throw JsonError(source() + (at.empty() ? "" : ": " + one_line(at)) + ": " + one_line(msg));
}

JsonView read_json_view(const std::filesystem::path& path) { return JsonView(read_json_file(path), path.string()); }

JsonView parse_json_view(const std::string& text, const std::string& what) { return JsonView(parse_json(text, what), what); }

std::string describe_json(const json& j) {
  auto shortened = [](std::string s) {
    s = one_line(s);
    if (s.size() > 40) {
      std::size_t cut = 39;
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
      s = s.substr(0, cut) + "…";
    }
    return s;
  };
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return j.get<bool>() ? "true" : "false";
    case json::value_t::string:
      return "a string " + shortened(j.dump(-1, ' ', false, json::error_handler_t::replace));
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer " + shortened(j.dump());
    case json::value_t::number_float:
      // Parsed from a number too large for a double (JSON has no infinities).
      if (!std::isfinite(j.get<double>())) return "a number out of range";
      return "a number " + shortened(j.dump());
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    default:
      return "a JSON value of another kind";
  }
}

}  // namespace evoopt
