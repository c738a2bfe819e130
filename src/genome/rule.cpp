#include "evoopt/genome/rule.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "evoopt/common/error.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/genome/program.hpp"

namespace evoopt::genome::rule {
namespace {

// ---------------------------------------------------------------- variables

const std::vector<VarInfo>& var_table() {
  // id, tensor, Python, C++, LaTeX (as read), LaTeX before / after its update, state key, reads bias correction
  static const std::vector<VarInfo> table = {
      {Var::Param, true, "p", "p", "\\theta_{t-1}", "\\theta_{t-1}", "\\theta_t", "", false},
      {Var::Grad, true, "p.grad", "p.grad()", "g_t", "", "", "", false},
      {Var::G, true, "g", "g", "g_t", "", "", "", false},
      {Var::M, true, "m", "m", "m_t", "m_{t-1}", "m_t", "exp_avg", false},
      {Var::V, true, "v", "v", "v_t", "v_{t-1}", "v_t", "exp_avg_sq", false},
      {Var::C, true, "c", "c", "c_{t-1}", "c_{t-1}", "c_t", "lion_exp_avg", false},
      {Var::MHat, true, "m_hat", "m_hat", "\\hat{m}_t", "", "", "", true},
      {Var::Denom, true, "denom", "denom", "\\sqrt{\\hat{v}_t}+\\epsilon", "", "", "", true},
      {Var::Step, false, "t", "t", "t", "", "", "", false},
      {Var::LrT, false, "lr_t", "lr_t", "\\eta_t", "", "", "", false},
      {Var::Beta1, false, "beta1", "beta1", "\\beta_1", "", "", "", false},
      {Var::Beta2, false, "beta2", "beta2", "\\beta_2", "", "", "", false},
      {Var::Eps, false, "group[\"eps\"]", "o.eps", "\\epsilon", "", "", "", false},
      {Var::Wd, false, "group[\"weight_decay\"]", "o.weight_decay", "\\lambda", "", "", "", false},
      {Var::Bc1, false, "bc1", "bc1", "\\left(1-\\beta_1^t\\right)", "", "", "", false},
      {Var::Bc2, false, "bc2", "bc2", "\\left(1-\\beta_2^t\\right)", "", "", "", false},
      {Var::Ng, false, "ng", "ng", "a_t", "", "", "", true},
      {Var::Nm, false, "nm", "nm", "b_t", "", "", "", true},
      {Var::S0, true, "s0", "s0", "s_{0}", "s_{0,t-1}", "s_{0,t}", "slot0", false},
      {Var::S1, true, "s1", "s1", "s_{1}", "s_{1,t-1}", "s_{1,t}", "slot1", false},
      {Var::S2, true, "s2", "s2", "s_{2}", "s_{2,t-1}", "s_{2,t}", "slot2", false},
      {Var::R0, true, "r0", "r0", "r_{0}", "", "", "", false},
      {Var::R1, true, "r1", "r1", "r_{1}", "", "", "", false},
      {Var::R2, true, "r2", "r2", "r_{2}", "", "", "", false},
      {Var::R3, true, "r3", "r3", "r_{3}", "", "", "", false},
      {Var::R4, true, "r4", "r4", "r_{4}", "", "", "", false},
      {Var::R5, true, "r5", "r5", "r_{5}", "", "", "", false},
      {Var::R6, true, "r6", "r6", "r_{6}", "", "", "", false},
      {Var::R7, true, "r7", "r7", "r_{7}", "", "", "", false},
      {Var::U, true, "u", "u", "u_t", "", "", "", false},
      {Var::AvgW, false, "avg_w", "avg_w", "c_t", "", "", "", false},
      {Var::X, true, "x", "x", "x_t", "", "", "", false},
  };
  return table;
}

// ---------------------------------------------------------------- operations

// A value while a rule runs: a tensor when `t` is defined, else the double `s`.
struct Value {
  torch::Tensor t;
  double s = 0.0;
  bool tensor() const { return t.defined(); }
};

// Applies f to two values of any mix of tensor and double, as torch's operators do.
template <typename F>
Value binary(const Value& a, const Value& b, F f) {
  if (a.tensor() && b.tensor()) return {f(a.t, b.t)};
  if (a.tensor()) return {f(a.t, b.s)};
  if (b.tensor()) return {f(a.s, b.t)};
  return {torch::Tensor(), f(a.s, b.s)};
}
template <typename F>
Value unary(const Value& a, F f) {
  if (a.tensor()) return {f(a.t)};
  return {torch::Tensor(), f(a.s)};
}
double sign_of(double v) { return static_cast<double>((v > 0.0) - (v < 0.0)); }

// How an operation is spelled in one language. Precedence: 100 atoms and calls, 90 method
// calls (the receiver needs 90), 80 power, 70 negation, 60 products, 50 sums.
struct Spelling {
  enum class Kind : std::uint8_t { Infix, Prefix, Method, Call } kind;
  std::string_view pattern;  // Infix/Prefix: the operator; Method/Call: with {0} {1} {2}
  int prec = 100;
};
Spelling infix(std::string_view op, int prec) { return {Spelling::Kind::Infix, op, prec}; }
Spelling prefix(std::string_view op, int prec) { return {Spelling::Kind::Prefix, op, prec}; }
Spelling method(std::string_view pattern) { return {Spelling::Kind::Method, pattern, 90}; }
Spelling call(std::string_view pattern) { return {Spelling::Kind::Call, pattern, 100}; }

struct OpInfo {
  Op op;
  int arity;
  Spelling python_tensor, python_scalar, cpp_tensor, cpp_scalar, latex;
  Value (*eval)(const Value* args);
};

// One row per operation: its evaluation and its spellings. A spelling with an empty
// pattern means the operation does not take that type.
const std::vector<OpInfo>& op_table() {
  using K = Spelling::Kind;
  static const Spelling none{K::Call, "", 100};
  static const std::vector<OpInfo> table = {
      {Op::Var, 0, none, none, none, none, none, nullptr},
      {Op::Num, 0, none, none, none, none, none, nullptr},
      {Op::Add, 2, infix(" + ", 50), infix(" + ", 50), infix(" + ", 50), infix(" + ", 50), infix(" + ", 50),
       [](const Value* a) { return binary(a[0], a[1], [](const auto& l, const auto& r) { return l + r; }); }},
      {Op::Sub, 2, infix(" - ", 50), infix(" - ", 50), infix(" - ", 50), infix(" - ", 50), infix(" - ", 50),
       [](const Value* a) { return binary(a[0], a[1], [](const auto& l, const auto& r) { return l - r; }); }},
      {Op::Mul, 2, infix(" * ", 60), infix(" * ", 60), infix(" * ", 60), infix(" * ", 60), infix("\\,", 60),
       [](const Value* a) { return binary(a[0], a[1], [](const auto& l, const auto& r) { return l * r; }); }},
      {Op::Div, 2, infix(" / ", 60), infix(" / ", 60), infix(" / ", 60), infix(" / ", 60), call("\\frac{{{0}}}{{{1}}}"),
       [](const Value* a) { return binary(a[0], a[1], [](const auto& l, const auto& r) { return l / r; }); }},
      {Op::Neg, 1, prefix("-", 70), prefix("-", 70), prefix("-", 70), prefix("-", 70), prefix("-", 70),
       [](const Value* a) { return unary(a[0], [](const auto& v) { return -v; }); }},
      {Op::Pow, 2, none, infix(" ** ", 80), none, call("std::pow({0}, {1})"), call("{0}^{{{1}}}"),
       [](const Value* a) {
         return Value{torch::Tensor(), std::pow(a[0].s, a[1].s)};
       }},
      {Op::Sqrt, 1, method("{0}.sqrt()"), call("math.sqrt({0})"), method("{0}.sqrt()"), call("std::sqrt({0})"), call("\\sqrt{{{0}}}"),
       [](const Value* a) {
         if (a[0].tensor()) return Value{a[0].t.sqrt()};
         return Value{torch::Tensor(), std::sqrt(a[0].s)};
       }},
      {Op::Sign, 1, method("{0}.sign()"), none, method("{0}.sign()"), none, call("\\operatorname{{sign}}{0}"),
       [](const Value* a) {
         if (a[0].tensor()) return Value{a[0].t.sign()};
         return Value{torch::Tensor(), sign_of(a[0].s)};
       }},
      {Op::Exp, 1, method("{0}.exp()"), call("math.exp({0})"), method("{0}.exp()"), call("std::exp({0})"), call("e^{{{0}}}"),
       [](const Value* a) {
         if (a[0].tensor()) return Value{a[0].t.exp()};
         return Value{torch::Tensor(), std::exp(a[0].s)};
       }},
      {Op::AddScaled, 3, method("{0}.add({1}, alpha={2})"), none, method("{0}.add({1}, {2})"), none, call("{0} + {2}\\,{1}"),
       [](const Value* a) { return Value{a[0].t.add(a[1].t, a[2].s)}; }},
      {Op::Abs, 1, method("{0}.abs()"), call("abs({0})"), method("{0}.abs()"), call("std::abs({0})"), call("\\left|{0}\\right|"),
       [](const Value* a) {
         if (a[0].tensor()) return Value{a[0].t.abs()};
         return Value{torch::Tensor(), std::abs(a[0].s)};
       }},
      {Op::Min, 2, call("torch.minimum({0}, {1})"), none, call("torch::minimum({0}, {1})"), none, call("\\min\\left({0}, {1}\\right)"),
       [](const Value* a) { return Value{torch::minimum(a[0].t, a[1].t)}; }},
      {Op::Max, 2, call("torch.maximum({0}, {1})"), none, call("torch::maximum({0}, {1})"), none, call("\\max\\left({0}, {1}\\right)"),
       [](const Value* a) { return Value{torch::maximum(a[0].t, a[1].t)}; }},
      {Op::Clip, 2, method("{0}.clamp(-{1}, {1})"), none, method("{0}.clamp(-{1}, {1})"), none,
       call("\\operatorname{{clip}}_{{{1}}}\\left({0}\\right)"), [](const Value* a) { return Value{a[0].t.clamp(-a[1].s, a[1].s)}; }},
      {Op::SafeDiv, 2, call("_safe_div({0}, {1})"), none, call("safe_div({0}, {1})"), none, call("\\frac{{{0}}}{{{1}}}"),
       [](const Value* a) {
         const torch::Tensor q = a[0].t / a[1].t;
         return Value{torch::where(a[1].t.abs() < kSafeDivFloor, torch::zeros_like(q), q)};
       }},
      {Op::RmsNorm, 1, call("_rms_normalize({0})"), none, call("rms_normalize({0})"), none,
       call("\\frac{{{0}}}{{\\operatorname{{rms}}\\left({0}\\right)}}"),
       [](const Value* a) { return Value{a[0].t / (a[0].t.square().mean().sqrt() + 1e-8)}; }},
      {Op::L2Norm, 1, call("_l2_normalize({0})"), none, call("l2_normalize({0})"), none, call("\\frac{{{0}}}{{\\left\\|{0}\\right\\|}}"),
       [](const Value* a) { return Value{a[0].t / (a[0].t.norm() + 1e-8)}; }},
      {Op::Orthogonalize, 1, call("_orthogonalize({0})"), none, call("orthogonalize({0})"), none, call("\\operatorname{{NS}}_5\\left({0}\\right)"),
       [](const Value* a) { return Value{orthogonalize(a[0].t)}; }},
      {Op::RsqrtEps, 2, method("{0}.abs().sqrt().add({1}).reciprocal()"), none, method("{0}.abs().sqrt().add({1}).reciprocal()"), none,
       call("\\frac{{1}}{{\\sqrt{{\\left|{0}\\right|}}+{1}}}"),
       [](const Value* a) { return Value{a[0].t.abs().sqrt_().add_(a[1].s).reciprocal_()}; }},
      {Op::AspectScale, 1, call("_aspect_scale({0})"), none, call("aspect_scale({0})"), none,
       call("\\sqrt{{\\max\\left(1, \\tfrac{{r}}{{c}}\\right)}}\\,{0}"), [](const Value* a) { return Value{aspect_scale(a[0].t)}; }},
  };
  return table;
}

const OpInfo& op_info(Op op) { return op_table().at(static_cast<std::size_t>(op)); }

Expr make(Op op, std::vector<Expr> args) {
  Expr e;
  e.op = op;
  e.args = std::move(args);
  if (static_cast<int>(e.args.size()) != op_info(op).arity) throw Error("update rule: wrong operand count");
  return e;
}

// ---------------------------------------------------------------- spelling

enum class Lang { Python, Cpp, Latex };

// A constant in code: full precision, with a decimal point so C++ reads a double.
std::string code_number(double v) {
  std::string s = fmt::format("{:.17g}", v);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}

struct Spelled {
  std::string text;
  int prec;
};

std::string wrap(const Spelled& s, int min_prec, Lang lang) {
  if (s.prec >= min_prec) return s.text;
  return lang == Lang::Latex ? "\\left(" + s.text + "\\right)" : "(" + s.text + ")";
}

std::string fill(std::string_view pattern, const std::vector<std::string>& args) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '{' && i + 2 < pattern.size() && pattern[i + 2] == '}' && pattern[i + 1] >= '0' && pattern[i + 1] <= '9') {
      out += args.at(static_cast<std::size_t>(pattern[i + 1] - '0'));
      i += 2;
    } else if ((pattern[i] == '{' || pattern[i] == '}') && i + 1 < pattern.size() && pattern[i + 1] == pattern[i]) {
      out += pattern[i];
      ++i;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

Spelled spell(const Expr& e, Lang lang, std::optional<Var> prev_of);

// LaTeX writes a product scalar first and x·x as x².
Spelled spell_latex_mul(const Expr& e, std::optional<Var> prev_of) {
  const Expr* a = &e.args[0];
  const Expr* b = &e.args[1];
  if (a->op == Op::Var && *a == *b) return {wrap(spell(*a, Lang::Latex, prev_of), 100, Lang::Latex) + "^2", 80};
  if (a->is_tensor() && !b->is_tensor()) std::swap(a, b);
  return {wrap(spell(*a, Lang::Latex, prev_of), 60, Lang::Latex) + "\\," + wrap(spell(*b, Lang::Latex, prev_of), 61, Lang::Latex), 60};
}

Spelled spell(const Expr& e, Lang lang, std::optional<Var> prev_of) {
  if (e.op == Op::Var) {
    const VarInfo& v = var_info(e.var);
    if (lang == Lang::Latex) return {std::string(prev_of == e.var ? v.latex_prev : v.latex), e.var == Var::Denom ? 50 : 100};
    return {std::string(lang == Lang::Python ? v.python : v.cpp), 100};
  }
  if (e.op == Op::Num) {
    const std::string s = lang == Lang::Latex ? fmt::format("{:.4g}", e.num) : code_number(e.num);
    return {s, e.num < 0 || std::signbit(e.num) ? 70 : 100};
  }
  if (lang == Lang::Latex && e.op == Op::Mul) return spell_latex_mul(e, prev_of);
  const OpInfo& info = op_info(e.op);
  const bool tensor = e.is_tensor();
  const Spelling& s = lang == Lang::Latex    ? info.latex
                      : lang == Lang::Python ? (tensor ? info.python_tensor : info.python_scalar)
                                             : (tensor ? info.cpp_tensor : info.cpp_scalar);
  if (s.pattern.empty()) throw Error("update rule: an operation has no spelling for its operand types");
  std::vector<Spelled> args;
  for (const auto& a : e.args) args.push_back(spell(a, lang, prev_of));
  switch (s.kind) {
    case Spelling::Kind::Infix:
      return {wrap(args[0], s.prec, lang) + std::string(s.pattern) + wrap(args[1], s.prec + 1, lang), s.prec};
    case Spelling::Kind::Prefix:
      return {std::string(s.pattern) + wrap(args[0], s.prec + 1, lang), s.prec};
    case Spelling::Kind::Method: {
      std::vector<std::string> text = {wrap(args[0], 90, lang)};
      for (std::size_t i = 1; i < args.size(); ++i) text.push_back(args[i].text);
      return {fill(s.pattern, text), 90};
    }
    case Spelling::Kind::Call: {
      std::vector<std::string> text;
      for (const auto& a : args) text.push_back(a.text);
      // LaTeX functions without their own brackets (sign) take (x) around an atom, else \left(x\right).
      if (lang == Lang::Latex && e.op == Op::Sign) text[0] = args[0].prec >= 100 ? "(" + text[0] + ")" : "\\left(" + text[0] + "\\right)";
      // a + c·b: c and b are factors of a product (1 − β bracketed).
      if (lang == Lang::Latex && e.op == Op::AddScaled) {
        text[1] = wrap(args[1], 61, lang);
        text[2] = wrap(args[2], 60, lang);
      }
      return {fill(s.pattern, text), e.op == Op::AddScaled ? 50 : s.prec};
    }
  }
  return {"", 100};
}

// In-place methods: spelling in Python and C++, and execution.
struct MethodInfo {
  Method method;
  std::string_view python, cpp;
};
const MethodInfo& method_info(Method m) {
  static const std::vector<MethodInfo> table = {
      {Method::Mul, "mul_({0})", "mul_({0})"},
      {Method::Add, "add_({0}, alpha={1})", "add_({0}, {1})"},
      {Method::AddCMul, "addcmul_({0}, {1}, value={2})", "addcmul_({0}, {1}, {2})"},
      {Method::AddCDiv, "addcdiv_({0}, {1}, value={2})", "addcdiv_({0}, {1}, {2})"},
  };
  return table.at(static_cast<std::size_t>(m));
}

std::string spell_update(const Stmt& s, Lang lang) {
  std::string out(lang == Lang::Python ? var_info(s.target).python : var_info(s.target).cpp);
  for (const auto& c : s.calls) {
    std::vector<std::string> args;
    for (const auto& a : c.args) args.push_back(spell(a, lang, std::nullopt).text);
    out += "." + fill(lang == Lang::Python ? method_info(c.method).python : method_info(c.method).cpp, args);
  }
  return out;
}

std::vector<std::string> lines(const Rule& rule, Lang lang) {
  const bool py = lang == Lang::Python;
  // C++ declares a name once: one let is a const, a name let again (a program's temporaries)
  // is declared at its first let and assigned after.
  std::array<int, kVarCount> lets{};
  for (const auto& s : rule.stmts)
    if (s.kind == Stmt::Kind::Let) ++lets[static_cast<std::size_t>(s.target)];
  std::array<bool, kVarCount> declared{};
  std::vector<std::string> out;
  for (const auto& s : rule.stmts) {
    const VarInfo& v = var_info(s.target);
    const std::string name(py ? v.python : v.cpp);
    std::string line;
    switch (s.kind) {
      case Stmt::Kind::Let: {
        const auto i = static_cast<std::size_t>(s.target);
        if (py)
          line = name + " = " + python(s.value);
        else if (lets[i] == 1)
          line = fmt::format("const {} {} = {};", v.tensor ? "torch::Tensor" : "double", name, cpp(s.value));
        else
          line = declared[i] ? fmt::format("{} = {};", name, cpp(s.value))
                             : fmt::format("{} {} = {};", v.tensor ? "torch::Tensor" : "double", name, cpp(s.value));
        declared[i] = true;
        break;
      }
      case Stmt::Kind::Update:
        line = spell_update(s, lang) + (py ? "" : ";");
        break;
      case Stmt::Kind::Assign:
        line = name + ".copy_(" + (py ? python(s.value) : cpp(s.value)) + ")" + (py ? "" : ";");
        break;
      case Stmt::Kind::Nesterov:
        line = py ? fmt::format("ng, nm = _nesterov_coefficients(beta1, {}, t, state)", s.bias_correction ? "True" : "False")
                  : fmt::format("const auto [ng, nm] = nesterov_coefficients(beta1, {}, t, st.mu_product);", s.bias_correction ? "true" : "false");
        break;
      case Stmt::Kind::AverageWeight:
        line = py ? "avg_w = _average_weight(lr_t, state)" : "const double avg_w = average_weight(lr_t, st.lr_max, st.weight_sum);";
        break;
    }
    if (!s.comment.empty()) line += (py ? "  # " : "  // ") + s.comment;
    out.push_back(line);
  }
  return out;
}

// ---------------------------------------------------------------- execution

Value eval(const Expr& e, const Env& env) {
  if (e.op == Op::Var) {
    const auto i = static_cast<std::size_t>(e.var);
    if (var_info(e.var).tensor) {
      if (!env.tensor[i].defined()) throw Error(fmt::format("update rule: {} is read before it is set", var_info(e.var).python));
      return {env.tensor[i]};
    }
    return {torch::Tensor(), env.scalar[i]};
  }
  if (e.op == Op::Num) return {torch::Tensor(), e.num};
  Value args[3];
  for (std::size_t i = 0; i < e.args.size(); ++i) args[i] = eval(e.args[i], env);
  return op_info(e.op).eval(args);
}

double scalar_of(const Expr& e, const Env& env) { return eval(e, env).s; }

void run_update(const Stmt& s, Env& env) {
  torch::Tensor& target = env.tensor[static_cast<std::size_t>(s.target)];
  for (const auto& c : s.calls) {
    switch (c.method) {
      case Method::Mul:
        target.mul_(scalar_of(c.args[0], env));
        break;
      case Method::Add:
        target.add_(eval(c.args[0], env).t, scalar_of(c.args[1], env));
        break;
      case Method::AddCMul:
        target.addcmul_(eval(c.args[0], env).t, eval(c.args[1], env).t, scalar_of(c.args[2], env));
        break;
      case Method::AddCDiv:
        target.addcdiv_(eval(c.args[0], env).t, eval(c.args[1], env).t, scalar_of(c.args[2], env));
        break;
    }
  }
}

// ---------------------------------------------------------------- building

Stmt let(Var target, Expr value, std::string comment = "") { return {Stmt::Kind::Let, target, std::move(value), {}, false, std::move(comment)}; }
Stmt update(Var target, std::vector<Call> calls, std::string comment = "") {
  return {Stmt::Kind::Update, target, Expr{}, std::move(calls), false, std::move(comment)};
}

// θ += coef·value, in torch's fused forms where the value allows: a/b as addcdiv_, a
// variable as add_, and m̂ as m with the coefficient divided by bc1 (no m̂ temporary).
Stmt apply_term(const Expr& value, Expr coef, const std::string& name) {
  auto unhat = [&coef](const Expr& a) {
    if (a.op != Op::Var || a.var != Var::MHat) return a;
    coef = coef / x(Var::Bc1);
    return x(Var::M);
  };
  if (value.op == Op::Div && value.args[0].is_tensor() && value.args[1].is_tensor()) {
    Expr a = unhat(value.args[0]);
    return update(Var::Param, {{Method::AddCDiv, {a, value.args[1], coef}}}, name);
  }
  if (value.op == Op::Var && value.is_tensor()) {
    Expr a = unhat(value);
    return update(Var::Param, {{Method::Add, {a, coef}}}, name);
  }
  return update(Var::Param, {{Method::Add, {value, coef}}}, name);
}

}  // namespace

const VarInfo& var_info(Var v) { return var_table().at(static_cast<std::size_t>(v)); }

bool Expr::is_tensor() const {
  if (op == Op::Var) return var_info(var).tensor;
  return std::any_of(args.begin(), args.end(), [](const Expr& a) { return a.is_tensor(); });
}

bool Expr::reads(Var v) const {
  if (op == Op::Var) return var == v;
  return std::any_of(args.begin(), args.end(), [v](const Expr& a) { return a.reads(v); });
}

bool Expr::operator==(const Expr& o) const {
  if (op != o.op) return false;
  if (op == Op::Var) return var == o.var;
  if (op == Op::Num) return std::memcmp(&num, &o.num, sizeof num) == 0;
  return args == o.args;
}

Expr x(Var v) {
  Expr e;
  e.op = Op::Var;
  e.var = v;
  return e;
}
Expr num(double v) {
  Expr e;
  e.op = Op::Num;
  e.num = v;
  return e;
}
Expr operator+(Expr a, Expr b) { return make(Op::Add, {std::move(a), std::move(b)}); }
Expr operator-(Expr a, Expr b) { return make(Op::Sub, {std::move(a), std::move(b)}); }
Expr operator*(Expr a, Expr b) { return make(Op::Mul, {std::move(a), std::move(b)}); }
Expr operator/(Expr a, Expr b) { return make(Op::Div, {std::move(a), std::move(b)}); }
Expr operator-(Expr a) { return make(Op::Neg, {std::move(a)}); }
Expr pow(Expr a, Expr b) { return make(Op::Pow, {std::move(a), std::move(b)}); }
Expr sqrt(Expr a) { return make(Op::Sqrt, {std::move(a)}); }
Expr sign(Expr a) { return make(Op::Sign, {std::move(a)}); }
Expr exp(Expr a) { return make(Op::Exp, {std::move(a)}); }
Expr add_scaled(Expr a, Expr b, Expr alpha) { return make(Op::AddScaled, {std::move(a), std::move(b), std::move(alpha)}); }
Expr abs(Expr a) { return make(Op::Abs, {std::move(a)}); }
Expr minimum(Expr a, Expr b) { return make(Op::Min, {std::move(a), std::move(b)}); }
Expr maximum(Expr a, Expr b) { return make(Op::Max, {std::move(a), std::move(b)}); }
Expr clip(Expr a, Expr c) { return make(Op::Clip, {std::move(a), std::move(c)}); }
Expr safe_div(Expr a, Expr b) { return make(Op::SafeDiv, {std::move(a), std::move(b)}); }
Expr rms_normalize(Expr a) { return make(Op::RmsNorm, {std::move(a)}); }
Expr l2_normalize(Expr a) { return make(Op::L2Norm, {std::move(a)}); }
Expr orthogonalize(Expr a) { return make(Op::Orthogonalize, {std::move(a)}); }
Expr rsqrt_eps(Expr a, Expr eps) { return make(Op::RsqrtEps, {std::move(a), std::move(eps)}); }
Expr aspect_scale(Expr a) { return make(Op::AspectScale, {std::move(a)}); }

double average_weight(double lr_t, double& lr_max, double& weight_sum) {
  lr_max = std::max(lr_max, lr_t);
  const double w = lr_max * lr_max;
  weight_sum += w;
  return weight_sum > 0 ? w / weight_sum : 0.0;
}

torch::Tensor aspect_scale(const torch::Tensor& x) {
  if (x.dim() < 2) return x.clone();
  const double rows = static_cast<double>(x.size(0)), cols = static_cast<double>(x.numel()) / rows;
  return x * std::sqrt(std::max(1.0, rows / cols));
}

torch::Tensor orthogonalize(const torch::Tensor& x, int steps) {
  if (x.dim() < 2) return x.clone();
  constexpr double a = 3.4445, b = -4.7750, c = 2.0315;
  torch::Tensor X = x.reshape({x.size(0), -1});
  const bool tall = X.size(0) > X.size(1);
  if (tall) X = X.t();
  X = X / (X.norm() + 1e-7);
  for (int i = 0; i < steps; ++i) {
    const torch::Tensor A = X.mm(X.t());
    const torch::Tensor B = b * A + c * A.mm(A);
    X = a * X + B.mm(X);
  }
  if (tall) X = X.t();
  return X.reshape(x.sizes());
}

Expr substitute(Expr e, Var from, const Expr& to) {
  if (e.op == Op::Var) return e.var == from ? to : e;
  for (auto& a : e.args) a = substitute(std::move(a), from, to);
  return e;
}

bool Rule::reads(Var v) const {
  for (const auto& s : stmts) {
    if (s.target == v) return true;
    if ((s.kind == Stmt::Kind::Let || s.kind == Stmt::Kind::Assign) && s.value.reads(v)) return true;
    for (const auto& c : s.calls)
      for (const auto& a : c.args)
        if (a.reads(v)) return true;
  }
  return false;
}

Rule update_rule(const Genome& h, const std::vector<WeightedTerm>& terms) {
  const bool bc = h.bias_correction;
  std::vector<Stmt> applied;
  for (const auto& t : terms) {
    // Without bias correction m̂ is m and 1 − β1^t is 1.
    const Expr value = bc ? t.value : substitute(substitute(t.value, Var::MHat, x(Var::M)), Var::Bc1, num(1.0));
    applied.push_back(apply_term(value, -x(Var::LrT) * num(t.weight), t.name));
  }
  const Rule terms_only{applied};
  const bool need_m = terms_only.reads(Var::M) || terms_only.reads(Var::MHat);
  const bool need_v = terms_only.reads(Var::Denom) || terms_only.reads(Var::V);
  const Expr one = num(1.0);

  Rule r;
  const bool l2 = h.log10_weight_decay && !h.decoupled_weight_decay;
  r.stmts.push_back(l2 ? let(Var::G, add_scaled(x(Var::Grad), x(Var::Param), x(Var::Wd)), "L2 weight decay") : let(Var::G, x(Var::Grad)));
  if (need_m) r.stmts.push_back(update(Var::M, {{Method::Mul, {x(Var::Beta1)}}, {Method::Add, {x(Var::G), one - x(Var::Beta1)}}}));
  if (need_v) r.stmts.push_back(update(Var::V, {{Method::Mul, {x(Var::Beta2)}}, {Method::AddCMul, {x(Var::G), x(Var::G), one - x(Var::Beta2)}}}));
  if (bc && (terms_only.reads(Var::Bc1) || terms_only.reads(Var::MHat))) r.stmts.push_back(let(Var::Bc1, one - pow(x(Var::Beta1), x(Var::Step))));
  if (bc && need_v) r.stmts.push_back(let(Var::Bc2, one - pow(x(Var::Beta2), x(Var::Step))));
  if (h.log10_weight_decay && h.decoupled_weight_decay)
    r.stmts.push_back(update(Var::Param, {{Method::Mul, {one - x(Var::LrT) * x(Var::Wd)}}}, "decoupled weight decay"));
  if (need_v) r.stmts.push_back(let(Var::Denom, (bc ? sqrt(x(Var::V)) / sqrt(x(Var::Bc2)) : sqrt(x(Var::V))) + x(Var::Eps)));
  if (terms_only.reads(Var::MHat)) r.stmts.push_back(let(Var::MHat, x(Var::M) / x(Var::Bc1)));
  if (terms_only.reads(Var::Ng) || terms_only.reads(Var::Nm)) r.stmts.push_back({Stmt::Kind::Nesterov, Var::Ng, Expr{}, {}, bc, ""});
  r.stmts.insert(r.stmts.end(), applied.begin(), applied.end());
  if (terms_only.reads(Var::C))
    r.stmts.push_back(
        update(Var::C, {{Method::Mul, {x(Var::Beta2)}}, {Method::Add, {x(Var::G), one - x(Var::Beta2)}}}, "Lion's momentum moves after the step"));
  return r;
}

Rule update_rule(const Genome& genome) {
  if (genome.is_program()) return program_rule(genome);
  if (!genome.is_terms())
    throw Error(std::string("genome algorithm ") + algorithm_name(genome.algorithm) + " is a hand-made optimizer, not an update rule of terms");
  std::vector<WeightedTerm> terms;
  for (const auto& t : genome.terms) {
    const TermInfo& info = term_info(t.term);
    terms.push_back({info.value, t.weight, std::string(info.name)});
  }
  return update_rule(genome, terms);
}

void set_step_scalars(Env& env, const Genome& g, std::int64_t t, double lr_t) {
  auto scalar = [&env](Var v) -> double& { return env.scalar[static_cast<std::size_t>(v)]; };
  scalar(Var::Step) = static_cast<double>(t);
  scalar(Var::LrT) = lr_t;
  scalar(Var::Beta1) = g.beta1;
  scalar(Var::Beta2) = g.beta2;
  scalar(Var::Eps) = g.eps();
  scalar(Var::Wd) = g.weight_decay();
  env.step = t;
}

void run(const Rule& rule, Env& env) {
  for (const auto& s : rule.stmts) {
    const auto i = static_cast<std::size_t>(s.target);
    switch (s.kind) {
      case Stmt::Kind::Let: {
        Value v = eval(s.value, env);
        if (var_info(s.target).tensor)
          env.tensor[i] = std::move(v.t);
        else
          env.scalar[i] = v.s;
        break;
      }
      case Stmt::Kind::Update:
        run_update(s, env);
        break;
      case Stmt::Kind::Assign: {
        if (!env.tensor[i].defined()) throw Error(fmt::format("update rule: state {} is not allocated", var_info(s.target).python));
        env.tensor[i].copy_(eval(s.value, env).t);
        break;
      }
      case Stmt::Kind::Nesterov: {
        const auto c = nesterov_coefficients(env.scalar[static_cast<std::size_t>(Var::Beta1)], s.bias_correction, env.step, env.mu_product);
        env.scalar[static_cast<std::size_t>(Var::Ng)] = c.g;
        env.scalar[static_cast<std::size_t>(Var::Nm)] = c.m;
        break;
      }
      case Stmt::Kind::AverageWeight:
        env.scalar[static_cast<std::size_t>(Var::AvgW)] = average_weight(env.scalar[static_cast<std::size_t>(Var::LrT)], env.lr_max, env.weight_sum);
        break;
    }
  }
}

torch::Tensor evaluate(const Expr& e, const Env& env) { return eval(e, env).t; }

std::vector<std::string> python_lines(const Rule& rule) { return lines(rule, Lang::Python); }
std::vector<std::string> cpp_lines(const Rule& rule) { return lines(rule, Lang::Cpp); }
std::string python(const Expr& e) { return spell(e, Lang::Python, std::nullopt).text; }
std::string cpp(const Expr& e) { return spell(e, Lang::Cpp, std::nullopt).text; }
std::string latex(const Expr& e) { return spell(e, Lang::Latex, std::nullopt).text; }

std::string latex_definition(const Stmt& s) {
  // The chain target.f_1(..).f_2(..) as the value it leaves: f applied to the previous value.
  Expr value = x(s.target);
  for (const auto& c : s.calls) {
    switch (c.method) {
      case Method::Mul:
        value = c.args[0] * value;
        break;
      case Method::Add:
        value = value + c.args[1] * c.args[0];
        break;
      case Method::AddCMul:
        value = value + c.args[2] * (c.args[0] * c.args[1]);
        break;
      case Method::AddCDiv:
        value = value + c.args[2] * (c.args[0] / c.args[1]);
        break;
    }
  }
  return std::string(var_info(s.target).latex_next) + " = " + spell(value, Lang::Latex, s.target).text;
}

}  // namespace evoopt::genome::rule
