#include "evoopt/genome/program.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>
#include <torch/torch.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/rng.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/genome/term.hpp"

namespace evoopt::genome {
namespace {

using rule::Expr;
using rule::Var;
using rule::x;

// What an operation reads: its register operands and whether it takes a constant (and which
// values the constant may take when it is a number).
enum class ConstantKind : std::uint8_t { None, Any, Positive, Weight, Decay };
struct OpRow {
  ProgramOp op;
  const char* name;
  int registers;
  ConstantKind constant;
};

constexpr OpRow kOps[] = {
    {ProgramOp::Add, "add", 2, ConstantKind::None},
    {ProgramOp::Sub, "sub", 2, ConstantKind::None},
    {ProgramOp::Mul, "mul", 2, ConstantKind::None},
    {ProgramOp::Div, "div", 2, ConstantKind::None},
    {ProgramOp::Min, "min", 2, ConstantKind::None},
    {ProgramOp::Max, "max", 2, ConstantKind::None},
    {ProgramOp::Neg, "neg", 1, ConstantKind::None},
    {ProgramOp::Abs, "abs", 1, ConstantKind::None},
    {ProgramOp::Sign, "sign", 1, ConstantKind::None},
    {ProgramOp::Sqrt, "sqrt", 1, ConstantKind::None},
    {ProgramOp::Square, "square", 1, ConstantKind::None},
    {ProgramOp::Exp, "exp", 1, ConstantKind::None},
    {ProgramOp::Rsqrt, "rsqrt", 1, ConstantKind::Positive},
    {ProgramOp::Clip, "clip", 1, ConstantKind::Positive},
    {ProgramOp::Scale, "scale", 1, ConstantKind::Any},
    {ProgramOp::Interp, "interp", 2, ConstantKind::Weight},
    {ProgramOp::BiasCorrect, "bias_correct", 1, ConstantKind::Decay},
    {ProgramOp::RmsNormalize, "rms_normalize", 1, ConstantKind::None},
    {ProgramOp::L2Normalize, "l2_normalize", 1, ConstantKind::None},
    {ProgramOp::Orthogonalize, "orthogonalize", 1, ConstantKind::None},
    {ProgramOp::Nesterov, "nesterov", 2, ConstantKind::None},
    {ProgramOp::AspectScale, "aspect_scale", 1, ConstantKind::None},
};

const OpRow& row(ProgramOp op) {
  for (const auto& r : kOps)
    if (r.op == op) return r;
  throw Error("program: unknown operation");
}

// Registers by name; the first two are read only.
constexpr std::pair<Var, const char*> kRegisters[] = {
    {Var::G, "g"},   {Var::Param, "theta"}, {Var::S0, "s0"}, {Var::S1, "s1"}, {Var::S2, "s2"}, {Var::R0, "r0"}, {Var::R1, "r1"}, {Var::R2, "r2"},
    {Var::R3, "r3"}, {Var::R4, "r4"},       {Var::R5, "r5"}, {Var::R6, "r6"}, {Var::R7, "r7"}, {Var::U, "u"},   {Var::X, "x"},
};
const char* register_name(Var v) {
  for (const auto& [var, name] : kRegisters)
    if (var == v) return name;
  return "?";
}
bool is_state(Var v) { return v == Var::S0 || v == Var::S1 || v == Var::S2; }
constexpr Constant::Name kConstantNames[] = {Constant::Name::Beta1, Constant::Name::Beta2, Constant::Name::Eps,
                                             Constant::Name::Lr,    Constant::Name::Wd,    Constant::Name::AvgWeight};
bool is_input(Var v) { return v == Var::G || v == Var::Param; }

std::string trim(const std::string& s) {
  std::size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::string number_text(double v) {
  std::string s = fmt::format("{:.17g}", v);
  // The shortest text that reads back to the same double.
  for (int digits = 1; digits <= 17; ++digits) {
    std::string t = fmt::format("{:.{}g}", v, digits);
    if (std::strtod(t.c_str(), nullptr) == v) return t;
  }
  return s;
}

// One statement's text: "dst = op(a, b, c)".
Statement parse_statement(const std::string& line) {
  const auto eq = line.find('=');
  if (eq == std::string::npos) throw Error("expected 'register = operation(operands)'");
  const std::string dst = trim(line.substr(0, eq)), rhs = trim(line.substr(eq + 1));
  const auto open = rhs.find('('), close = rhs.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open || trim(rhs.substr(close + 1)) != "")
    throw Error("expected 'register = operation(operands)'");
  Statement s;
  const std::string name = trim(rhs.substr(0, open));
  const OpRow* op = nullptr;
  for (const auto& r : kOps)
    if (name == r.name) op = &r;
  if (op == nullptr) throw Error("unknown operation '" + name + "'");
  s.op = op->op;
  bool found = false;
  for (const auto& [var, n] : kRegisters)
    if (dst == n) {
      s.dst = var;
      found = true;
    }
  if (!found) throw Error("unknown register '" + dst + "' (registers: g, theta, s0-s2, r0-r7, u, x)");
  std::vector<std::string> operands;
  const std::string inside = rhs.substr(open + 1, close - open - 1);
  if (!trim(inside).empty()) {
    std::size_t start = 0;
    for (std::size_t i = 0; i <= inside.size(); ++i)
      if (i == inside.size() || inside[i] == ',') {
        operands.push_back(trim(inside.substr(start, i - start)));
        start = i + 1;
      }
  }
  const std::size_t want = static_cast<std::size_t>(op->registers) + (op->constant != ConstantKind::None ? 1 : 0);
  if (operands.size() != want) throw Error(fmt::format("{} takes {} operands, got {}", op->name, want, operands.size()));
  for (int i = 0; i < op->registers; ++i) {
    const std::string& a = operands[static_cast<std::size_t>(i)];
    bool ok = false;
    for (const auto& [var, n] : kRegisters)
      if (a == n) {
        s.args.push_back(var);
        ok = true;
      }
    if (!ok) throw Error(fmt::format("operand {} of {} is '{}', not a register (g, theta, s0-s2, r0-r7, u)", i + 1, op->name, a));
  }
  if (op->constant != ConstantKind::None) {
    const std::string& a = operands.back();
    Constant c;
    bool by_name = false;
    for (const auto n : kConstantNames)
      if (a == Constant{n, 0.0}.text()) {
        c.name = n;
        by_name = true;
      }
    if (!by_name) {
      char* end = nullptr;
      c.value = std::strtod(a.c_str(), &end);
      if (a.empty() || end != a.c_str() + a.size())
        throw Error(fmt::format("the constant of {} is '{}', not a number, beta1, beta2, eps, lr, wd or avg_weight", op->name, a));
    }
    s.c = c;
  }
  return s;
}

// The statement's own checks (operands and constant); order-dependent ones are in validate().
void check_statement(const Statement& s) {
  const OpRow& op = row(s.op);
  if (static_cast<int>(s.args.size()) != op.registers)
    throw Error(fmt::format("{} reads {} registers, got {}", op.name, op.registers, s.args.size()));
  if (is_input(s.dst)) throw Error(fmt::format("{} is an input: it cannot be written", register_name(s.dst)));
  if ((op.constant == ConstantKind::None) != !s.c)
    throw Error(fmt::format("{} {} a constant", op.name, op.constant == ConstantKind::None ? "takes no" : "needs"));
  if (!s.c || s.c->name != Constant::Name::None) return;
  const double v = s.c->value;
  if (!std::isfinite(v)) throw Error(fmt::format("the constant of {} must be finite", op.name));
  if (op.constant == ConstantKind::Positive && !(v > 0)) throw Error(fmt::format("the constant of {} must be > 0, got {}", op.name, number_text(v)));
  if (op.constant == ConstantKind::Weight && !(v >= 0 && v <= 1))
    throw Error(fmt::format("the weight of interp must be in [0, 1], got {}", number_text(v)));
  if (op.constant == ConstantKind::Decay && !(v >= 0 && v < 1))
    throw Error(fmt::format("the β of bias_correct must be in [0, 1), got {}", number_text(v)));
  if (op.constant == ConstantKind::Any && std::fabs(v) > 1e6)
    throw Error(fmt::format("the constant of {} must be within ±1e6, got {}", op.name, number_text(v)));
}

std::string statement_context(std::size_t i, const std::string& text) { return fmt::format("program statement {} ({})", i + 1, text); }

Expr constant_expr(const Constant& c) {
  switch (c.name) {
    case Constant::Name::Beta1:
      return x(Var::Beta1);
    case Constant::Name::Beta2:
      return x(Var::Beta2);
    case Constant::Name::Eps:
      return x(Var::Eps);
    case Constant::Name::Lr:
      return x(Var::LrT);
    case Constant::Name::Wd:
      return x(Var::Wd);
    case Constant::Name::AvgWeight:
      return x(Var::AvgW);
    case Constant::Name::None:
      break;
  }
  return rule::num(c.value);
}

// The statement's value as an update-rule expression.
Expr value_of(const Statement& s) {
  const auto a = [&s](std::size_t i) { return x(s.args.at(i)); };
  const Expr one = rule::num(1.0);
  switch (s.op) {
    case ProgramOp::Add:
      return a(0) + a(1);
    case ProgramOp::Sub:
      return a(0) - a(1);
    case ProgramOp::Mul:
      return a(0) * a(1);
    case ProgramOp::Div:
      return rule::safe_div(a(0), a(1));
    case ProgramOp::Min:
      return rule::minimum(a(0), a(1));
    case ProgramOp::Max:
      return rule::maximum(a(0), a(1));
    case ProgramOp::Neg:
      return -a(0);
    case ProgramOp::Abs:
      return rule::abs(a(0));
    case ProgramOp::Sign:
      return rule::sign(a(0));
    case ProgramOp::Sqrt:
      return rule::sqrt(rule::abs(a(0)));
    case ProgramOp::Square:
      return a(0) * a(0);
    case ProgramOp::Exp:
      return rule::exp(a(0));
    case ProgramOp::Rsqrt:
      return rule::rsqrt_eps(a(0), constant_expr(*s.c));
    case ProgramOp::Clip:
      return rule::clip(a(0), constant_expr(*s.c));
    case ProgramOp::Scale:
      return a(0) * constant_expr(*s.c);
    case ProgramOp::Interp:  // as torch's EMA updates spell it: (a·β).add(b, alpha=1−β)
      return rule::add_scaled(a(0) * constant_expr(*s.c), a(1), one - constant_expr(*s.c));
    case ProgramOp::BiasCorrect:
      return a(0) / (one - rule::pow(constant_expr(*s.c), x(Var::Step)));
    case ProgramOp::RmsNormalize:
      return rule::rms_normalize(a(0));
    case ProgramOp::L2Normalize:
      return rule::l2_normalize(a(0));
    case ProgramOp::Orthogonalize:
      return rule::orthogonalize(a(0));
    case ProgramOp::Nesterov:  // NESTEROV's value: g·a_t + m·b_t
      return a(1) * x(Var::Ng) + a(0) * x(Var::Nm);
    case ProgramOp::AspectScale:
      return rule::aspect_scale(a(0));
  }
  throw Error("program: unknown operation");
}

}  // namespace

bool Constant::operator==(const Constant& o) const {
  if (name != o.name) return false;
  return name != Name::None || value == o.value;
}

std::string Constant::text() const {
  switch (name) {
    case Name::Beta1:
      return "beta1";
    case Name::Beta2:
      return "beta2";
    case Name::Eps:
      return "eps";
    case Name::Lr:
      return "lr";
    case Name::Wd:
      return "wd";
    case Name::AvgWeight:
      return "avg_weight";
    case Name::None:
      break;
  }
  return number_text(value);
}

const char* program_op_name(ProgramOp op) { return row(op).name; }

const std::vector<ProgramOp>& program_ops() {
  static const std::vector<ProgramOp> ops = [] {
    std::vector<ProgramOp> out;
    for (const auto& r : kOps) out.push_back(r.op);
    return out;
  }();
  return ops;
}

int program_op_registers(ProgramOp op) { return row(op).registers; }
bool program_op_takes_constant(ProgramOp op) { return row(op).constant != ConstantKind::None; }

std::string Statement::text() const {
  std::string out = std::string(register_name(dst)) + " = " + program_op_name(op) + "(";
  for (std::size_t i = 0; i < args.size(); ++i) out += (i ? ", " : "") + std::string(register_name(args[i]));
  if (c) out += (args.empty() ? "" : ", ") + c->text();
  return out + ")";
}

Program Program::parse(const std::vector<std::string>& lines) {
  Program p;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    try {
      p.statements.push_back(parse_statement(lines[i]));
      check_statement(p.statements.back());
    } catch (const Error& e) {
      throw Error(statement_context(i, trim(lines[i])) + ": " + e.what());
    }
  }
  p.validate();
  return p;
}

std::vector<std::string> Program::lines() const {
  std::vector<std::string> out;
  for (const auto& s : statements) out.push_back(s.text());
  return out;
}

void Program::validate() const {
  if (statements.empty()) throw Error("program has no statements (it needs at least one that writes u)");
  if (statements.size() > kMaxStatements)
    throw Error(fmt::format("program has {} statements, more than the maximum {}", statements.size(), kMaxStatements));
  std::array<bool, rule::kVarCount> written{};
  for (const Var v : {Var::G, Var::Param, Var::S0, Var::S1, Var::S2}) written[static_cast<std::size_t>(v)] = true;
  int nesterovs = 0;
  for (std::size_t i = 0; i < statements.size(); ++i) {
    const Statement& s = statements[i];
    try {
      check_statement(s);
      for (const Var a : s.args)
        if (!written[static_cast<std::size_t>(a)]) throw Error(fmt::format("reads {} before any statement writes it", register_name(a)));
      if (s.op == ProgramOp::Nesterov && ++nesterovs > 1) throw Error("a second nesterov (a program has at most one)");
      if (s.dst == Var::X) {
        if (i + 1 != statements.size()) throw Error("x, the evaluation point, is written by the last statement only");
        for (const Var a : s.args)
          if (a != Var::Param && !is_state(a))
            throw Error(fmt::format("x, the evaluation point, reads theta and the state slots only, not {}", register_name(a)));
        if (s.op == ProgramOp::Nesterov) throw Error("x, the evaluation point, cannot use nesterov");
      }
    } catch (const Error& e) {
      throw Error(statement_context(i, s.text()) + ": " + e.what());
    }
    written[static_cast<std::size_t>(s.dst)] = true;
  }
  if (!written[static_cast<std::size_t>(Var::U)]) throw Error("program never writes u, the update direction");
  // Does u depend on g? Data flow through the statements, repeated so that a state slot
  // carries what it holds into the next step.
  std::array<bool, rule::kVarCount> from_g{};
  from_g[static_cast<std::size_t>(Var::G)] = true;
  for (int pass = 0; pass < 4; ++pass)
    for (const auto& s : statements) {
      // A slot read before this step writes it holds what the previous pass left there.
      bool d = false;
      for (const Var a : s.args) d = d || from_g[static_cast<std::size_t>(a)];
      from_g[static_cast<std::size_t>(s.dst)] = d;
    }
  if (!from_g[static_cast<std::size_t>(Var::U)]) throw Error("program's output u does not depend on the gradient g");
}

bool Program::uses(ProgramOp op) const {
  return std::any_of(statements.begin(), statements.end(), [op](const Statement& s) { return s.op == op; });
}

bool Program::has_evaluation_point() const { return !statements.empty() && statements.back().dst == Var::X; }

bool Program::reads(Constant::Name name) const {
  return std::any_of(statements.begin(), statements.end(), [name](const Statement& s) { return s.c && s.c->name == name; });
}

// ---------------------------------------------------------------- simplify and probe

namespace {
bool commutative(ProgramOp op) { return op == ProgramOp::Add || op == ProgramOp::Mul || op == ProgramOp::Min || op == ProgramOp::Max; }
bool is_temporary(Var v) { return v >= Var::R0 && v <= Var::R7; }
}  // namespace

namespace {
// A statement that leaves its destination as it was: d = interp(d, d, β), scale(d, 1), min(d, d), max(d, d).
bool identity_on_itself(const Statement& s) {
  if (s.args.empty() || s.args[0] != s.dst) return false;
  switch (s.op) {
    case ProgramOp::Interp:
    case ProgramOp::Min:
    case ProgramOp::Max:
      return s.args[1] == s.dst;
    case ProgramOp::Scale:
      return s.c->name == Constant::Name::None && s.c->value == 1.0;
    default:
      return false;
  }
}
}  // namespace

Program simplify(const Program& input) {
  Program p;
  for (const auto& s : input.statements)
    if (!identity_on_itself(s)) p.statements.push_back(s);
  // Liveness, backwards, to a fixpoint over steps: a slot read before this step writes it
  // needs the last write of the previous step.
  const std::size_t n = p.statements.size();
  std::vector<bool> live(n, false);
  std::array<bool, rule::kVarCount> at_end{};
  at_end[static_cast<std::size_t>(Var::U)] = true;
  at_end[static_cast<std::size_t>(Var::X)] = true;
  for (bool changed = true; changed;) {
    changed = false;
    std::array<bool, rule::kVarCount> needed = at_end;
    for (std::size_t k = n; k-- > 0;) {
      const Statement& s = p.statements[k];
      const auto d = static_cast<std::size_t>(s.dst);
      if (!needed[d]) continue;
      live[k] = true;
      needed[d] = false;
      for (const Var a : s.args) needed[static_cast<std::size_t>(a)] = true;
    }
    for (const Var v : {Var::S0, Var::S1, Var::S2})
      if (needed[static_cast<std::size_t>(v)] && !at_end[static_cast<std::size_t>(v)]) at_end[static_cast<std::size_t>(v)] = changed = true;
  }
  Program out;
  for (std::size_t k = 0; k < n; ++k)
    if (live[k]) out.statements.push_back(p.statements[k]);
  // Temporaries renamed by first write (a bijection, so reads follow their writes).
  std::array<int, rule::kVarCount> order;
  order.fill(-1);
  int next = 0;
  for (auto& s : out.statements)
    if (is_temporary(s.dst) && order[static_cast<std::size_t>(s.dst)] < 0) order[static_cast<std::size_t>(s.dst)] = next++;
  auto renamed = [&order](Var v) { return is_temporary(v) ? static_cast<Var>(static_cast<int>(Var::R0) + order[static_cast<std::size_t>(v)]) : v; };
  for (auto& s : out.statements) {
    s.dst = renamed(s.dst);
    for (auto& a : s.args) a = renamed(a);
    if (commutative(s.op) && s.args[1] < s.args[0]) std::swap(s.args[0], s.args[1]);
  }
  return out;
}

namespace {
// One part's outputs on the probe: u at every step (and x, where the program has one), for
// the gradient sequence drawn from `gradient_seed`.
std::vector<double> probe_outputs(const Genome& g, std::uint64_t gradient_seed) {
  const rule::Rule r = program_rule(g, /*fuse=*/false), at_x = evaluation_rule(g);
  Rng rng(0x70726f6265ULL);  // "probe"
  std::vector<torch::Tensor> params, slots[3];
  for (const auto& shape : {std::vector<std::int64_t>{5, 4}, std::vector<std::int64_t>{6}}) {
    auto t = torch::empty(shape, torch::kFloat64);
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data_ptr<double>()[i] = rng.normal(0.0, 1.0);
    params.push_back(t);
    for (auto& s : slots) s.push_back(torch::zeros_like(t));
  }
  Rng grads(gradient_seed);
  std::vector<rule::Env> carried(params.size());  // the scalar state between steps (μ product, c_t's sums)
  std::vector<double> out;
  const auto append = [&out](const torch::Tensor& v) {
    const auto c = v.contiguous();
    out.insert(out.end(), c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  for (int t = 1; t <= kProbeSteps; ++t)
    for (std::size_t k = 0; k < params.size(); ++k) {
      auto grad = torch::empty_like(params[k]);
      for (std::int64_t i = 0; i < grad.numel(); ++i) grad.data_ptr<double>()[i] = grads.normal(0.0, 1.0);
      rule::Env env;
      auto tensor = [&env](Var v) -> torch::Tensor& { return env.tensor[static_cast<std::size_t>(v)]; };
      tensor(Var::Param) = params[k];
      tensor(Var::Grad) = grad;
      tensor(Var::S0) = slots[0][k];
      tensor(Var::S1) = slots[1][k];
      tensor(Var::S2) = slots[2][k];
      rule::set_step_scalars(env, g, t, 1e-2);
      env.mu_product = carried[k].mu_product;
      env.lr_max = carried[k].lr_max;
      env.weight_sum = carried[k].weight_sum;
      rule::run(r, env);
      carried[k].mu_product = env.mu_product;
      carried[k].lr_max = env.lr_max;
      carried[k].weight_sum = env.weight_sum;
      append(tensor(Var::U));
      if (!at_x.stmts.empty()) {
        rule::run(at_x, env);
        append(tensor(Var::X));
      }
    }
  return out;
}
}  // namespace

Probe probe(const Genome& g) {
  Probe result;
  std::string text;
  const bool two = !g.program_rest.statements.empty();
  for (const Part part : {Part::Hidden, Part::Rest}) {
    if (part == Part::Rest && !two) break;
    const Genome one = program_part(g, part);
    const std::vector<double> a = probe_outputs(one, 1), b = probe_outputs(one, 2);
    if (part == Part::Rest) text += "|rest:";
    for (const double v : a) {
      if (!std::isfinite(v)) result.finite = false;
      text += fmt::format("{:.8e};", v == 0.0 ? 0.0 : v);
    }
    result.reads_g = result.reads_g && a != b;
  }
  result.fingerprint = mix64(fnv1a64(text));
  return result;
}

// ---------------------------------------------------------------- terms as a program

namespace {

// Emits statements; m in s0, v in s1, Lion's momentum in s2, as GenomeOptimizer keeps them.
struct Emitter {
  Program p;
  void emit(Var dst, ProgramOp op, std::vector<Var> args, std::optional<Constant> c = std::nullopt) {
    p.statements.push_back({op, dst, std::move(args), c});
  }
};
Constant named(Constant::Name n) { return {n, 0.0}; }
Constant number(double v) { return {Constant::Name::None, v}; }

}  // namespace

Program program_of_terms(const Genome& genome) {
  const Genome g = genome.canonical();
  if (!g.is_terms()) throw Error(std::string("genome algorithm ") + algorithm_name(g.algorithm) + " is not a weighted sum of terms");
  const bool bc = g.bias_correction;
  const auto b1 = named(Constant::Name::Beta1), b2 = named(Constant::Name::Beta2), eps = named(Constant::Name::Eps);
  Emitter e;
  const Var G = Var::G, M = Var::S0, V = Var::S1, C = Var::S2;
  if (g.needs_m()) e.emit(M, ProgramOp::Interp, {M, G}, b1);
  if (g.needs_v()) {
    e.emit(Var::R0, ProgramOp::Square, {G});
    e.emit(V, ProgramOp::Interp, {V, Var::R0}, b2);
  }
  // Shared values: m̂ in r1, 1/(√v̂+ε) in r2.
  Var m_hat = M;
  bool have_m_hat = false, have_inv_denom = false;
  auto need_m_hat = [&] {
    if (!bc || have_m_hat) return;
    e.emit(Var::R1, ProgramOp::BiasCorrect, {M}, b1);
    m_hat = Var::R1;
    have_m_hat = true;
  };
  auto need_inv_denom = [&] {
    if (have_inv_denom) return;
    if (bc) {
      e.emit(Var::R2, ProgramOp::BiasCorrect, {V}, b2);
      e.emit(Var::R2, ProgramOp::Rsqrt, {Var::R2}, eps);
    } else {
      e.emit(Var::R2, ProgramOp::Rsqrt, {V}, eps);
    }
    have_inv_denom = true;
  };
  bool first = true;
  for (const auto& t : g.terms) {
    Var value = Var::R3;
    switch (t.term) {
      case Term::Grad:
        value = G;
        break;
      case Term::Momentum:
        need_m_hat();
        value = m_hat;
        break;
      case Term::RmsNorm:
        need_inv_denom();
        e.emit(Var::R3, ProgramOp::Mul, {G, Var::R2});
        break;
      case Term::AdamTerm:
        need_m_hat();
        need_inv_denom();
        e.emit(Var::R3, ProgramOp::Mul, {m_hat, Var::R2});
        break;
      case Term::SignGrad:
        e.emit(Var::R3, ProgramOp::Sign, {G});
        break;
      case Term::Nesterov:
        e.emit(Var::R3, ProgramOp::Nesterov, {M, G});
        break;
      case Term::SignMomentum:
        e.emit(Var::R3, ProgramOp::Sign, {M});
        break;
      case Term::Lion:
        e.emit(Var::R3, ProgramOp::Interp, {C, G}, b1);
        e.emit(Var::R3, ProgramOp::Sign, {Var::R3});
        break;
      case Term::AddSign:
      case Term::PowerSign:
        e.emit(Var::R3, ProgramOp::Sign, {G});
        e.emit(Var::R4, ProgramOp::Sign, {M});
        e.emit(Var::R3, ProgramOp::Mul, {Var::R3, Var::R4});
        if (t.term == Term::AddSign) {
          e.emit(Var::R3, ProgramOp::Mul, {Var::R3, G});
          e.emit(Var::R3, ProgramOp::Add, {Var::R3, G});
        } else {
          e.emit(Var::R3, ProgramOp::Exp, {Var::R3});
          e.emit(Var::R3, ProgramOp::Mul, {Var::R3, G});
        }
        break;
      case Term::LionV1:
      case Term::NesterovV1:
        need_m_hat();
        e.emit(Var::R3, ProgramOp::Interp, {m_hat, G}, b1);
        if (t.term == Term::LionV1) e.emit(Var::R3, ProgramOp::Sign, {Var::R3});
        break;
      case Term::NAdamW:
        need_m_hat();
        need_inv_denom();
        if (bc) {
          e.emit(Var::R3, ProgramOp::BiasCorrect, {G}, b1);
          e.emit(Var::R3, ProgramOp::Interp, {m_hat, Var::R3}, b1);
        } else {
          e.emit(Var::R3, ProgramOp::Interp, {M, G}, b1);
        }
        e.emit(Var::R3, ProgramOp::Mul, {Var::R3, Var::R2});
        break;
    }
    if (first) {
      e.emit(Var::U, ProgramOp::Scale, {value}, number(t.weight));
      first = false;
    } else {
      e.emit(Var::R5, ProgramOp::Scale, {value}, number(t.weight));
      e.emit(Var::U, ProgramOp::Add, {Var::U, Var::R5});
    }
  }
  if (g.needs_lion_m()) e.emit(C, ProgramOp::Interp, {C, G}, b2);  // Lion's momentum moves after the step
  e.p.validate();
  return e.p;
}

Genome program_genome(const Genome& terms_genome) {
  Genome g = terms_genome;
  g.program = program_of_terms(terms_genome);
  g.algorithm = Algorithm::Program;
  g.terms.clear();
  g.validate(Bounds::kHardMaxTerms);
  return g;
}

namespace {
// Where program_rule fuses statements, as torch's own optimizers do: a square feeding a
// slot's EMA of itself (s.mul_(β).addcmul_(a, a, 1−β)), and an output that is a product,
// u = a·b or u = scale(a·b, 1), applied to θ by addcmul_ without a buffer for u. Each only
// where the value it removes is read nowhere else.
struct Fusions {
  std::vector<bool> skip, square_into_ema;
  std::optional<std::pair<Var, Var>> product;
};

// Reads of `v` by statements [from, n) up to (not past) the next statement writing it.
int reads_until_rewritten(const Program& p, Var v, std::size_t from) {
  int reads = 0;
  for (std::size_t k = from; k < p.statements.size(); ++k) {
    for (const Var a : p.statements[k].args) reads += a == v;
    if (p.statements[k].dst == v) break;
  }
  return reads;
}
bool written_from(const Program& p, Var v, std::size_t from) {
  for (std::size_t k = from; k < p.statements.size(); ++k)
    if (p.statements[k].dst == v) return true;
  return false;
}

Fusions fusions(const Program& p) {
  const std::size_t n = p.statements.size();
  Fusions f{std::vector<bool>(n, false), std::vector<bool>(n, false), std::nullopt};
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const Statement& sq = p.statements[i];
    const Statement& ema = p.statements[i + 1];
    if (sq.op == ProgramOp::Square && is_temporary(sq.dst) && ema.op == ProgramOp::Interp && is_state(ema.dst) && ema.args[0] == ema.dst &&
        ema.args[1] == sq.dst && sq.args[0] != ema.dst && reads_until_rewritten(p, sq.dst, i + 1) == 1 && !f.skip[i] && !f.square_into_ema[i]) {
      f.square_into_ema[i] = true;
      f.skip[i + 1] = true;  // emitted with i
      ++i;
    }
  }
  // The last statement writing u (the evaluation point aside), nothing after it reading u.
  std::size_t last = n;
  for (std::size_t k = 0; k < n; ++k)
    if (p.statements[k].dst == Var::U) last = k;
  if (last == n || f.skip[last] || reads_until_rewritten(p, Var::U, last + 1) != 0) return f;
  const Statement& out = p.statements[last];
  std::size_t product_at = last;
  if (out.op == ProgramOp::Scale && out.c->name == Constant::Name::None && out.c->value == 1.0 && last > 0 && is_temporary(out.args[0]) &&
      p.statements[last - 1].dst == out.args[0] && reads_until_rewritten(p, out.args[0], last) == 1 && !f.skip[last - 1] &&
      !f.square_into_ema[last - 1])
    product_at = last - 1;
  const Statement& mul = p.statements[product_at];
  if (mul.op != ProgramOp::Mul) return f;
  // Its operands keep their values until the update at the end (no later statement writes them).
  const Var a = mul.args[0], b = mul.args[1];
  if (a == Var::U || b == Var::U || written_from(p, a, product_at + 1) || written_from(p, b, product_at + 1)) return f;
  f.product = std::make_pair(a, b);
  f.skip[product_at] = true;
  f.skip[last] = true;
  return f;
}
}  // namespace

rule::Rule program_rule(const Genome& g, bool fuse) {
  using rule::Method;
  using rule::Stmt;
  const Program& program = g.program;
  rule::Rule r;
  // A program that reads wd applies weight decay itself; one that reads lr applies η_t itself.
  const bool own_decay = program.reads(Constant::Name::Wd), own_lr = program.reads(Constant::Name::Lr);
  const bool l2 = g.log10_weight_decay && !g.decoupled_weight_decay && !own_decay;
  r.stmts.push_back({Stmt::Kind::Let,
                     Var::G,
                     l2 ? rule::add_scaled(x(Var::Grad), x(Var::Param), x(Var::Wd)) : x(Var::Grad),
                     {},
                     false,
                     l2 ? "L2 weight decay" : ""});
  if (g.log10_weight_decay && g.decoupled_weight_decay && !own_decay)
    r.stmts.push_back(
        {Stmt::Kind::Update, Var::Param, Expr{}, {{Method::Mul, {rule::num(1.0) - x(Var::LrT) * x(Var::Wd)}}}, false, "decoupled weight decay"});
  if (program.uses(ProgramOp::Nesterov)) r.stmts.push_back({Stmt::Kind::Nesterov, Var::Ng, Expr{}, {}, g.bias_correction, ""});
  if (program.reads(Constant::Name::AvgWeight)) r.stmts.push_back({Stmt::Kind::AverageWeight, Var::AvgW, Expr{}, {}, false, ""});
  const Fusions fused =
      fuse ? fusions(program)
           : Fusions{std::vector<bool>(program.statements.size(), false), std::vector<bool>(program.statements.size(), false), std::nullopt};
  const Expr lr_coef = own_lr ? rule::num(-1.0) : -x(Var::LrT);
  for (std::size_t i = 0; i < program.statements.size(); ++i) {
    const Statement& s = program.statements[i];
    if (s.dst == Var::X) continue;  // the evaluation point: evaluation_rule
    if (fused.skip[i]) continue;
    if (fused.square_into_ema[i]) {  // t = square(a); s = interp(s, t, β)  as  s.mul_(β).addcmul_(a, a, 1−β)
      const Statement& ema = program.statements[i + 1];
      const Expr beta = constant_expr(*ema.c);
      const Expr a = x(s.args[0]);
      r.stmts.push_back({Stmt::Kind::Update, ema.dst, Expr{}, {{Method::Mul, {beta}}, {Method::AddCMul, {a, a, rule::num(1.0) - beta}}}, false, ""});
      ++i;
      continue;
    }
    // A slot's EMA of itself, s = interp(s, x, β), runs in place as torch's EMAs do,
    // s.mul_(β).add_(x, 1−β): the same arithmetic as the expression, without its two copies.
    if (is_state(s.dst) && s.op == ProgramOp::Interp && s.args[0] == s.dst && s.args[1] != s.dst) {
      const Expr beta = constant_expr(*s.c);
      r.stmts.push_back(
          {Stmt::Kind::Update, s.dst, Expr{}, {{Method::Mul, {beta}}, {Method::Add, {x(s.args[1]), rule::num(1.0) - beta}}}, false, ""});
      continue;
    }
    // scale(x, 1) of a temporary, g or u is x itself: nothing writes those in place, so the
    // name can share its buffer.
    if (!is_state(s.dst) && s.op == ProgramOp::Scale && s.c->name == Constant::Name::None && s.c->value == 1.0 &&
        (is_temporary(s.args[0]) || s.args[0] == Var::G || s.args[0] == Var::U)) {
      r.stmts.push_back({Stmt::Kind::Let, s.dst, x(s.args[0]), {}, false, ""});
      continue;
    }
    r.stmts.push_back({is_state(s.dst) ? Stmt::Kind::Assign : Stmt::Kind::Let, s.dst, value_of(s), {}, false, ""});
  }
  const char* comment = own_lr ? "θ ← θ − u" : "θ ← θ − η_t·u";
  if (fused.product)  // u = a·b applied as θ.addcmul_(a, b, −η_t): no buffer for u
    r.stmts.push_back(
        {Stmt::Kind::Update, Var::Param, Expr{}, {{Method::AddCMul, {x(fused.product->first), x(fused.product->second), lr_coef}}}, false, comment});
  else
    r.stmts.push_back({Stmt::Kind::Update, Var::Param, Expr{}, {{Method::Add, {x(Var::U), lr_coef}}}, false, comment});
  return r;
}

rule::Rule evaluation_rule(const Genome& g) {
  rule::Rule r;
  if (!g.program.has_evaluation_point()) return r;
  r.stmts.push_back({rule::Stmt::Kind::Let, Var::X, value_of(g.program.statements.back()), {}, false, "the evaluation point"});
  return r;
}

Genome program_part(const Genome& g, Part part) {
  Genome out = g;
  out.program_rest = Program{};
  if (part == Part::Rest && !g.program_rest.statements.empty()) {
    out.program = g.program_rest;
    out.log10_lr = g.log10_aux_lr;
  }
  return out;
}

// ---------------------------------------------------------------- program presets

namespace {
Program lines_program(std::initializer_list<const char*> lines) { return Program::parse(std::vector<std::string>(lines.begin(), lines.end())); }
}  // namespace

std::vector<std::string> program_preset_names() {
  std::vector<std::string> out;
  for (const auto& name : preset_names())
    if (preset(name).is_terms()) out.push_back(name);
  for (const char* extra : {"nadam", "muon", "schedule_free_adamw"}) out.push_back(extra);
  return out;
}

Genome program_preset(const std::string& name) {
  if (name == "nadam") {  // torch.optim.NAdam: m̂ with NAdam's μ schedule, v̂ bias-corrected
    Genome g = program_genome(preset("adam"));
    g.program = lines_program({"s0 = interp(s0, g, beta1)", "r0 = square(g)", "s1 = interp(s1, r0, beta2)", "r1 = nesterov(s0, g)",
                               "r2 = bias_correct(s1, beta2)", "r3 = rsqrt(r2, eps)", "u = mul(r1, r3)"});
    g.bias_correction = true;
    g.log10_weight_decay.reset();
    g.validate(Bounds::kHardMaxTerms);
    return g;
  }
  if (name == "muon") {  // the Muon baseline's rule as two programs, its hyperparameters
    const Genome m = preset("muon");
    Genome g = program_genome(preset("adam"));
    g.log10_lr = m.log10_lr;
    g.beta1 = m.beta1;
    g.log10_aux_lr = m.log10_aux_lr;
    g.log10_weight_decay = m.log10_weight_decay;
    g.decoupled_weight_decay = true;
    g.program = lines_program({"s0 = interp(s0, g, beta1)", "r0 = interp(s0, g, beta1)", "r1 = orthogonalize(r0)", "u = aspect_scale(r1)"});
    // Its AdamW part with the authors' β's (0.9, 0.95) and ε 1e-10.
    g.program_rest = lines_program({"s0 = interp(s0, g, 0.9)", "r0 = square(g)", "s1 = interp(s1, r0, 0.95)", "r1 = bias_correct(s0, 0.9)",
                                    "r2 = bias_correct(s1, 0.95)", "r3 = rsqrt(r2, 1e-10)", "u = mul(r1, r3)"});
    g.validate(Bounds::kHardMaxTerms);
    return g;
  }
  if (name == "schedule_free_adamw") {
    // θ holds y; s0 = v, s1 = z − y, s2 = x − y (zero at the start, where x = y = z). With
    // d = g/(√v̂+ε) + λ·y, A = z_{t+1} − y_t = s1 − η_t·d, B = x_{t+1} − y_t = c·A + (1−c)·s2 and
    // Δy = (1−β1)·A + β1·B (y = (1−β1)·z + β1·x), the slots move to A − Δy and B − Δy.
    const Genome sf = preset("schedule_free_adamw");
    Genome g = program_genome(preset("adam"));
    g.log10_lr = sf.log10_lr;
    g.beta1 = sf.beta1;
    g.beta2 = sf.beta2;
    g.log10_eps = sf.log10_eps;
    g.log10_weight_decay = sf.log10_weight_decay;
    g.warmup_fraction = sf.warmup_fraction;
    g.cosine_decay = false;
    g.program =
        lines_program({"r0 = square(g)", "s0 = interp(s0, r0, beta2)", "r1 = bias_correct(s0, beta2)", "r2 = rsqrt(r1, eps)", "r3 = mul(g, r2)",
                       "r4 = scale(theta, wd)", "r3 = add(r3, r4)", "r4 = scale(r3, lr)", "r5 = sub(s1, r4)", "r6 = interp(r5, s2, avg_weight)",
                       "r7 = interp(r6, r5, beta1)", "s1 = sub(r5, r7)", "s2 = sub(r6, r7)", "u = neg(r7)", "x = add(theta, s2)"});
    g.validate(Bounds::kHardMaxTerms);
    return g;
  }
  const auto names = program_preset_names();
  if (std::find(names.begin(), names.end(), name) == names.end() && name != "lion-like") {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw Error("no program preset '" + name + "' (program presets: " + list + ")");
  }
  return program_genome(preset(name));
}

}  // namespace evoopt::genome
