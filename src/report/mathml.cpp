// LaTeX → MathML for the formulas the report shows, and the escaping every part uses.
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <fmt/format.h>

#include "evoopt/common/error.hpp"
#include "evoopt/report/parts.hpp"
#include "evoopt/report/report.hpp"

namespace evoopt::report {

// Text for HTML and MathML content and attributes.
std::string esc(const std::string& t) {
  std::string o;
  for (char c : t) {
    if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '&')
      o += "&amp;";
    else if (c == '"')
      o += "&quot;";
    else
      o += c;
  }
  return o;
}

namespace {

class LatexToMathml {
 public:
  explicit LatexToMathml(const std::string& s) : s_(s) {}
  std::string run() {
    std::string out = row(/*until_brace=*/false);
    if (pos_ < s_.size()) fail("unexpected '" + std::string(1, s_[pos_]) + "'");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw Error(fmt::format("LaTeX to MathML: {} at {} in \"{}\"", what, pos_, s_)); }

  void skip_spaces() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }

  // Atoms and their scripts until '}' (when inside a group), \right or the end.
  std::string row(bool until_brace) {
    std::string out;
    while (true) {
      skip_spaces();
      if (pos_ >= s_.size()) {
        if (until_brace) fail("missing '}'");
        break;
      }
      if (s_[pos_] == '}') {
        if (!until_brace) fail("unbalanced '}'");
        break;
      }
      if (s_.compare(pos_, 6, "\\right") == 0 && !std::isalpha(static_cast<unsigned char>(pos_ + 6 < s_.size() ? s_[pos_ + 6] : ' '))) break;
      out += scripted(atom());
    }
    return out;
  }

  std::string scripted(std::string base) {
    std::optional<std::string> sub, sup;
    while (true) {
      skip_spaces();
      if (pos_ < s_.size() && (s_[pos_] == '_' || s_[pos_] == '^')) {
        const char k = s_[pos_++];
        std::optional<std::string>& script = k == '_' ? sub : sup;
        if (script) fail(k == '_' ? "double subscript" : "double superscript");  // as LaTeX: write x_{ab}
        skip_spaces();
        script = argument();
        continue;
      }
      break;
    }
    if (sub && sup) return "<msubsup>" + base + wrap(*sub) + wrap(*sup) + "</msubsup>";
    if (sub) return "<msub>" + base + wrap(*sub) + "</msub>";
    if (sup) return "<msup>" + base + wrap(*sup) + "</msup>";
    return base;
  }

  static std::string wrap(const std::string& x) { return "<mrow>" + x + "</mrow>"; }

  // A command's argument: a {group} or one token.
  std::string argument() {
    skip_spaces();
    if (pos_ >= s_.size()) fail("missing argument");
    if (s_[pos_] == '{') {
      ++pos_;
      std::string g = row(true);
      ++pos_;  // '}'
      return g;
    }
    if (s_[pos_] == '\\') return atom();
    const char c = s_[pos_++];
    if (std::isdigit(static_cast<unsigned char>(c))) return "<mn>" + std::string(1, c) + "</mn>";
    if (std::isalpha(static_cast<unsigned char>(c))) return "<mi>" + std::string(1, c) + "</mi>";
    return "<mo>" + esc(std::string(1, c)) + "</mo>";
  }

  std::string raw_group() {
    skip_spaces();
    if (pos_ >= s_.size() || s_[pos_] != '{') fail("expected '{'");
    // The group's text up to its matching '}'; nested braces group, as in LaTeX, and are not shown.
    std::size_t end = pos_ + 1;
    for (int depth = 1; depth > 0; ++end) {
      if (end >= s_.size()) fail("missing '}'");
      if (s_[end] == '{') ++depth;
      if (s_[end] == '}') --depth;
    }
    std::string t;
    for (std::size_t i = pos_ + 1; i + 1 < end; ++i)
      if (s_[i] != '{' && s_[i] != '}') t += s_[i];
    pos_ = end;
    return t;
  }

  // A delimiter after \left or \right: a character or a command (\lVert); '.' is none.
  std::string delimiter() {
    skip_spaces();
    if (pos_ >= s_.size()) fail("missing delimiter");
    if (s_[pos_] == '\\') {
      const std::string a = atom();
      return a;
    }
    const char c = s_[pos_++];
    if (c == '.') return "";
    return "<mo stretchy=\"true\">" + esc(std::string(1, c)) + "</mo>";
  }

  std::string atom() {
    const char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      std::string g = row(true);
      ++pos_;
      return wrap(g);
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      std::size_t end = pos_;
      while (end < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[end])) || s_[end] == '.')) ++end;
      std::string n = s_.substr(pos_, end - pos_);
      pos_ = end;
      return "<mn>" + n + "</mn>";
    }
    if (std::isalpha(static_cast<unsigned char>(c))) {
      ++pos_;
      return "<mi>" + std::string(1, c) + "</mi>";
    }
    if (c == '\\') return command();
    ++pos_;
    if (c == '-') return "<mo>&#x2212;</mo>";
    if (std::string("+=()[],/|<>!:;'*").find(c) != std::string::npos) return "<mo>" + esc(std::string(1, c)) + "</mo>";
    fail("unsupported character '" + std::string(1, c) + "'");
  }

  std::string command() {
    ++pos_;  // '\'
    if (pos_ >= s_.size()) fail("lone backslash");
    if (!std::isalpha(static_cast<unsigned char>(s_[pos_]))) {
      const char c = s_[pos_++];
      if (c == ',') return "<mspace width=\"0.17em\"/>";
      if (c == ';') return "<mspace width=\"0.28em\"/>";
      if (c == ' ') return "<mspace width=\"0.25em\"/>";
      if (c == '!') return "";
      if (c == '{' || c == '}') return "<mo>" + std::string(1, c) + "</mo>";
      fail("unsupported command '\\" + std::string(1, c) + "'");
    }
    std::size_t end = pos_;
    while (end < s_.size() && std::isalpha(static_cast<unsigned char>(s_[end]))) ++end;
    const std::string name = s_.substr(pos_, end - pos_);
    pos_ = end;
    static const std::map<std::string, std::string> letters = {
        {"alpha", "&#x3B1;"}, {"beta", "&#x3B2;"},  {"gamma", "&#x3B3;"},  {"delta", "&#x3B4;"},  {"epsilon", "&#x3B5;"},
        {"eta", "&#x3B7;"},   {"theta", "&#x3B8;"}, {"lambda", "&#x3BB;"}, {"mu", "&#x3BC;"},     {"pi", "&#x3C0;"},
        {"psi", "&#x3C8;"},   {"sigma", "&#x3C3;"}, {"tau", "&#x3C4;"},    {"nabla", "&#x2207;"}, {"infty", "&#x221E;"}};
    static const std::map<std::string, std::string> operators = {
        {"cdot", "&#x22C5;"},      {"odot", "&#x2299;"}, {"times", "&#xD7;"},   {"le", "&#x2264;"},    {"ge", "&#x2265;"},   {"pm", "&#xB1;"},
        {"leftarrow", "&#x2190;"}, {"to", "&#x2192;"},   {"lVert", "&#x2016;"}, {"rVert", "&#x2016;"}, {"prod", "&#x220F;"}, {"sum", "&#x2211;"}};
    static const std::set<std::string> functions = {"min", "max", "cos", "sin", "exp", "log", "sign"};
    if (auto it = letters.find(name); it != letters.end()) return "<mi>" + it->second + "</mi>";
    if (auto it = operators.find(name); it != operators.end()) return "<mo>" + it->second + "</mo>";
    if (functions.count(name)) return "<mi>" + name + "</mi><mo>&#x2061;</mo>";
    if (name == "frac" || name == "tfrac" || name == "dfrac") {
      const std::string num = argument();
      const std::string den = argument();
      return "<mfrac>" + wrap(num) + wrap(den) + "</mfrac>";
    }
    if (name == "sqrt") return "<msqrt>" + argument() + "</msqrt>";
    if (name == "hat") return "<mover accent=\"true\">" + wrap(argument()) + "<mo>^</mo></mover>";
    if (name == "operatorname") return "<mi>" + esc(raw_group()) + "</mi><mo>&#x2061;</mo>";
    if (name == "text") return "<mtext>" + esc(raw_group()) + "</mtext>";
    if (name == "quad") return "<mspace width=\"1em\"/>";
    if (name == "qquad") return "<mspace width=\"2em\"/>";
    if (name == "left") {
      const std::string open = delimiter();
      const std::string inner = row(false);
      if (s_.compare(pos_, 6, "\\right") != 0) fail("\\left without \\right");
      pos_ += 6;
      const std::string close = delimiter();
      return "<mrow>" + open + inner + close + "</mrow>";
    }
    fail("unsupported command '\\" + name + "'");
  }

  const std::string& s_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string latex_to_mathml(const std::string& latex, bool display) {
  return fmt::format("<math{}><mrow>{}</mrow></math>", display ? " display=\"block\"" : "", LatexToMathml(latex).run());
}

}  // namespace evoopt::report
