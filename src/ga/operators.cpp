#include "evoopt/ga/operators.hpp"

#include <algorithm>
#include <cmath>

#include "evoopt/common/error.hpp"

namespace evoopt::ga {
using genome::Bounds;
using genome::Genome;
using genome::Term;
using genome::TermGene;

const char* rule_space_name(RuleSpace s) { return s == RuleSpace::Programs ? "programs" : "terms"; }

RuleSpace rule_space_from_name(const std::string& name) {
  if (name == "terms") return RuleSpace::Terms;
  if (name == "programs") return RuleSpace::Programs;
  throw Error("unknown search space '" + name + "' (allowed: terms, programs)");
}

void SearchSpace::validate() const {
  if (max_terms < 1 || max_terms > Bounds::kHardMaxTerms)
    throw Error("max_terms " + std::to_string(max_terms) + " is outside [1, " + std::to_string(Bounds::kHardMaxTerms) + "]");
  if (max_statements < 1 || max_statements > static_cast<int>(genome::Program::kMaxStatements))
    throw Error("max_statements " + std::to_string(max_statements) + " is outside [1, " + std::to_string(genome::Program::kMaxStatements) + "]");
}

void MutationOptions::validate() const {
  for (double r : {gene_rate, structural_rate, flip_rate})
    if (!(r >= 0.0 && r <= 1.0)) throw Error("mutation rates must lie in [0, 1], got " + std::to_string(r));
  for (double s : {sigma_log10_lr, sigma_log10_eps, sigma_log10_wd, sigma_beta1, sigma_log10_1m_beta2, sigma_weight, sigma_warmup, strength})
    if (!(s >= 0.0) || !std::isfinite(s)) throw Error("mutation strengths must be finite and >= 0, got " + std::to_string(s));
}

namespace {
double clamp(double v, double lo, double hi) { return std::min(hi, std::max(lo, v)); }

Term random_term(const SearchSpace& space, Rng& rng) {
  const auto terms = genome::vocabulary_terms(space.vocabulary);
  return terms[rng.below(terms.size())];
}

double random_weight(Rng& rng) { return rng.uniform(0.1, 2.0); }
}  // namespace

// ---------------------------------------------------------------- programs

namespace {
using genome::Constant;
using genome::Program;
using genome::ProgramOp;
using genome::Statement;
using genome::rule::Var;

constexpr Var kWritable[] = {Var::S0, Var::S1, Var::S2, Var::R0, Var::R1, Var::R2, Var::R3, Var::R4, Var::R5, Var::R6, Var::R7, Var::U};

// An operation drawn uniformly from the program operations.
ProgramOp random_op(Rng& rng) {
  const auto& ops = genome::program_ops();
  return ops[rng.below(ops.size())];
}

// A fresh constant for `op`, valid for it: a β-like weight, an ε, a bound, a scale.
Constant random_constant(ProgramOp op, Rng& rng) {
  Constant c;
  switch (op) {
    case ProgramOp::Interp:
    case ProgramOp::BiasCorrect: {
      const double r = rng.uniform(0.0, 1.0);
      c.name = r < 0.3 ? Constant::Name::Beta1 : r < 0.5 ? Constant::Name::Beta2 : Constant::Name::None;
      c.value = 1.0 - std::pow(10.0, rng.uniform(-3.0, -0.3));
      break;
    }
    case ProgramOp::Rsqrt:
      c.name = rng.bernoulli(0.5) ? Constant::Name::Eps : Constant::Name::None;
      c.value = std::pow(10.0, rng.uniform(-10.0, -4.0));
      break;
    default:
      c.value = std::pow(10.0, rng.uniform(-1.0, 1.0)) * (op == ProgramOp::Scale && rng.bernoulli(0.2) ? -1.0 : 1.0);
      break;
  }
  return c;
}

// A constant nudged: numbers multiplicatively (β-like weights in log10(1 − β)), names kept.
Constant nudged(const Constant& c, ProgramOp op, Rng& rng) {
  if (c.name != Constant::Name::None) return rng.bernoulli(0.5) ? random_constant(op, rng) : c;
  Constant out = c;
  if (op == ProgramOp::Interp || op == ProgramOp::BiasCorrect) {
    const double l = std::log10(std::max(1.0 - c.value, 1e-6)) + rng.normal(0.0, 0.25);
    out.value = 1.0 - std::pow(10.0, std::min(l, -1e-3));
  } else {
    out.value = c.value * std::exp(rng.normal(0.0, 0.25));
  }
  return out;
}

// The registers statement k may read: inputs, state, and what earlier statements wrote.
std::vector<Var> readable(const Program& p, std::size_t k) {
  std::vector<Var> out = {Var::G, Var::G, Var::Param, Var::S0, Var::S1, Var::S2};  // g twice: the gradient is what rules read most
  for (std::size_t i = 0; i < k && i < p.statements.size(); ++i)
    if (std::find(out.begin(), out.end(), p.statements[i].dst) == out.end()) out.push_back(p.statements[i].dst);
  return out;
}

Statement random_statement(const Program& p, std::size_t k, Rng& rng) {
  Statement s;
  s.op = random_op(rng);
  s.dst = kWritable[rng.below(std::size(kWritable))];
  const auto regs = readable(p, k);
  for (int i = 0; i < genome::program_op_registers(s.op); ++i) s.args.push_back(regs[rng.below(regs.size())]);
  if (genome::program_op_takes_constant(s.op)) s.c = random_constant(s.op, rng);
  return s;
}

bool valid(const Program& p, int max_statements) {
  if (static_cast<int>(p.statements.size()) > max_statements) return false;
  try {
    p.validate();
    return true;
  } catch (const Error&) {
    return false;
  }
}
}  // namespace

Program mutate_program(const Program& p, int max_statements, Rng& rng, std::vector<std::string>* applied) {
  static const char* const kMoves[] = {"change_op", "change_operand", "change_constant", "insert_statement", "delete_statement"};
  for (int attempt = 0; attempt < 32; ++attempt) {
    Program q = p;
    const int move = static_cast<int>(rng.below(5));
    const std::size_t n = q.statements.size();
    if (n == 0) break;
    Statement& s = q.statements[rng.below(n)];
    if (move == 0) {
      const ProgramOp old = s.op;
      s.op = random_op(rng);
      // Same operands only: the move changes what is done to them.
      if (genome::program_op_registers(s.op) != genome::program_op_registers(old)) continue;
      const bool takes = genome::program_op_takes_constant(s.op);
      if (takes && !genome::program_op_takes_constant(old)) s.c = random_constant(s.op, rng);
      if (!takes) s.c.reset();
    } else if (move == 1) {
      if (s.args.empty()) continue;
      const std::size_t k = static_cast<std::size_t>(&s - q.statements.data());
      const auto regs = readable(q, k);
      s.args[rng.below(s.args.size())] = regs[rng.below(regs.size())];
    } else if (move == 2) {
      if (!s.c) continue;
      s.c = nudged(*s.c, s.op, rng);
    } else if (move == 3) {
      if (static_cast<int>(n) >= max_statements) continue;
      const std::size_t k = rng.below(n + 1);
      q.statements.insert(q.statements.begin() + static_cast<std::ptrdiff_t>(k), random_statement(q, k, rng));
    } else {
      if (n < 2) continue;
      q.statements.erase(q.statements.begin() + static_cast<std::ptrdiff_t>(rng.below(n)));
    }
    if (q != p && valid(q, max_statements)) {
      if (applied) applied->push_back(kMoves[move]);
      return q;
    }
  }
  return p;
}

Program crossover_programs(const Program& a, const Program& b, int max_statements, Rng& rng) {
  for (int attempt = 0; attempt < 32; ++attempt) {
    const std::size_t i = rng.below(a.statements.size() + 1), j = rng.below(b.statements.size() + 1);
    Program child;
    child.statements.assign(a.statements.begin(), a.statements.begin() + static_cast<std::ptrdiff_t>(i));
    child.statements.insert(child.statements.end(), b.statements.begin() + static_cast<std::ptrdiff_t>(j), b.statements.end());
    if (valid(child, max_statements)) return child;
  }
  return a;
}

// ---------------------------------------------------------------- genomes

Genome repair(Genome g, const SearchSpace& space, Rng& rng) {
  if (!g.is_program()) {  // a program is kept valid by its own operators
    const auto allowed = genome::vocabulary_terms(space.vocabulary);
    for (auto& t : g.terms) {
      if (std::find(allowed.begin(), allowed.end(), t.term) == allowed.end()) t.term = random_term(space, rng);
      t.weight = clamp(std::isfinite(t.weight) ? t.weight : 1.0, Bounds::kWeightMin, Bounds::kWeightMax);
    }
    if (static_cast<int>(g.terms.size()) > space.max_terms) g.terms.resize(static_cast<std::size_t>(space.max_terms));
    if (g.terms.empty() || g.canonical().terms.empty()) g.terms = {{random_term(space, rng), random_weight(rng)}};
  }
  g.log10_lr = clamp(g.log10_lr, Bounds::kLog10LrMin, Bounds::kLog10LrMax);
  if (g.has_program_rest()) g.log10_aux_lr = clamp(g.log10_aux_lr, Bounds::kLog10LrMin, Bounds::kLog10LrMax);
  g.beta1 = clamp(g.beta1, Bounds::kBeta1Min, Bounds::kBeta1Max);
  g.beta2 = clamp(g.beta2, Bounds::kBeta2Min, Bounds::kBeta2Max);
  g.log10_eps = clamp(g.log10_eps, Bounds::kLog10EpsMin, Bounds::kLog10EpsMax);
  if (g.log10_weight_decay) g.log10_weight_decay = clamp(*g.log10_weight_decay, Bounds::kLog10WdMin, Bounds::kLog10WdMax);
  g.warmup_fraction = clamp(g.warmup_fraction, Bounds::kWarmupMin, Bounds::kWarmupMax);
  if (g.clip_norm) g.clip_norm = clamp(*g.clip_norm, Bounds::kClipMin, Bounds::kClipMax);
  return g;
}

Genome random_genome(const SearchSpace& space, Rng& rng) {
  Genome g;
  const auto n = 1 + rng.below(static_cast<std::uint64_t>(space.max_terms));
  for (std::uint64_t i = 0; i < n; ++i) g.terms.push_back({random_term(space, rng), random_weight(rng)});
  g.log10_lr = rng.uniform(-4.0, -1.0);
  g.beta1 = rng.uniform(0.5, 0.99);
  g.beta2 = 1.0 - std::pow(10.0, rng.uniform(-4.0, -1.0));
  g.log10_eps = rng.uniform(-10.0, -6.0);
  if (rng.bernoulli(0.5)) g.log10_weight_decay = rng.uniform(-6.0, -2.0);
  g.decoupled_weight_decay = rng.bernoulli(0.7);
  g.bias_correction = rng.bernoulli(0.5);
  g.warmup_fraction = rng.bernoulli(0.3) ? rng.uniform(0.0, 0.2) : 0.0;
  g.cosine_decay = rng.bernoulli(0.5);
  if (rng.bernoulli(0.2)) g.clip_norm = std::pow(10.0, rng.uniform(-1.0, 1.0));
  g = repair(std::move(g), space, rng);
  return space.rules == RuleSpace::Programs ? genome::program_genome(g) : g;
}

std::size_t tournament_select(const std::vector<double>& fitness, int k, Rng& rng) {
  if (fitness.empty()) throw Error("tournament over an empty population");
  if (k < 1) throw Error("tournament size must be >= 1, got " + std::to_string(k));
  std::size_t best = rng.below(fitness.size());
  for (int i = 1; i < k; ++i) {
    const std::size_t c = rng.below(fitness.size());
    if (fitness[c] > fitness[best] || (fitness[c] == fitness[best] && c < best)) best = c;
  }
  return best;
}

Genome crossover(const Genome& a, const Genome& b, const SearchSpace& space, Rng& rng) {
  Genome child;
  if (a.is_program() && b.is_program()) {
    child.algorithm = genome::Algorithm::Program;
    child.program = crossover_programs(a.program, b.program, space.max_statements, rng);
    // A second program (genome.hpp's program_rest) crosses with the other's, or comes from
    // one parent with its η_aux.
    if (a.has_program_rest() && b.has_program_rest()) {
      child.program_rest = crossover_programs(a.program_rest, b.program_rest, space.max_statements, rng);
      child.log10_aux_lr = rng.bernoulli(0.5) ? a.log10_aux_lr : b.log10_aux_lr;
    } else if (a.has_program_rest() || b.has_program_rest()) {
      const Genome& from = rng.bernoulli(0.5) ? a : b;
      child.program_rest = from.program_rest;
      child.log10_aux_lr = from.log10_aux_lr;
    }
  } else {
    if (a.is_program() || b.is_program()) throw Error("crossover of a program with a term genome");
    const std::size_t i = rng.below(a.terms.size() + 1), j = rng.below(b.terms.size() + 1);
    child.terms.assign(a.terms.begin(), a.terms.begin() + static_cast<std::ptrdiff_t>(i));
    child.terms.insert(child.terms.end(), b.terms.begin() + static_cast<std::ptrdiff_t>(j), b.terms.end());
    if (child.terms.empty()) child.terms.push_back(rng.bernoulli(0.5) || b.terms.empty() ? a.terms.front() : b.terms.front());
    if (static_cast<int>(child.terms.size()) > space.max_terms) child.terms.resize(static_cast<std::size_t>(space.max_terms));
  }
  auto pick = [&rng](const auto& x, const auto& y) { return rng.bernoulli(0.5) ? x : y; };
  child.log10_lr = pick(a.log10_lr, b.log10_lr);
  child.beta1 = pick(a.beta1, b.beta1);
  child.beta2 = pick(a.beta2, b.beta2);
  child.log10_eps = pick(a.log10_eps, b.log10_eps);
  child.log10_weight_decay = pick(a.log10_weight_decay, b.log10_weight_decay);
  child.decoupled_weight_decay = pick(a.decoupled_weight_decay, b.decoupled_weight_decay);
  child.bias_correction = pick(a.bias_correction, b.bias_correction);
  child.warmup_fraction = pick(a.warmup_fraction, b.warmup_fraction);
  child.cosine_decay = pick(a.cosine_decay, b.cosine_decay);
  child.clip_norm = pick(a.clip_norm, b.clip_norm);
  return repair(std::move(child), space, rng);
}

Genome mutate(const Genome& parent, const SearchSpace& space, const MutationOptions& o, Rng& rng, std::vector<std::string>* applied) {
  Genome g = parent;
  const double s = o.strength;
  auto note = [applied](const char* what) {
    if (applied) applied->push_back(what);
  };
  if (rng.bernoulli(o.gene_rate)) {
    g.log10_lr += rng.normal(0.0, o.sigma_log10_lr * s);
    note("lr");
  }
  if (rng.bernoulli(o.gene_rate)) {
    g.beta1 = g.beta1 + rng.normal(0.0, o.sigma_beta1 * s);
    note("beta1");
  }
  if (rng.bernoulli(o.gene_rate)) {
    const double l = std::log10(std::max(1.0 - g.beta2, 1e-5)) + rng.normal(0.0, o.sigma_log10_1m_beta2 * s);
    g.beta2 = 1.0 - std::pow(10.0, std::min(l, 0.0));
    note("beta2");
  }
  if (rng.bernoulli(o.gene_rate)) {
    g.log10_eps += rng.normal(0.0, o.sigma_log10_eps * s);
    note("eps");
  }
  if (g.log10_weight_decay && rng.bernoulli(o.gene_rate)) {
    *g.log10_weight_decay += rng.normal(0.0, o.sigma_log10_wd * s);
    note("weight_decay");
  }
  if (g.warmup_fraction > 0 && rng.bernoulli(o.gene_rate)) {
    g.warmup_fraction += rng.normal(0.0, o.sigma_warmup * s);
    note("warmup");
  }
  for (auto& t : g.terms)
    if (rng.bernoulli(o.gene_rate)) {
      t.weight *= std::exp(rng.normal(0.0, o.sigma_weight * s));
      note("weight");
    }
  if (g.has_program_rest() && rng.bernoulli(o.gene_rate)) {
    g.log10_aux_lr += rng.normal(0.0, o.sigma_log10_lr * s);
    note("aux_lr");
  }
  if (g.is_program() && rng.bernoulli(o.structural_rate)) {
    // With two programs, one of them (drawn) takes the move.
    Program& p = g.has_program_rest() && rng.bernoulli(0.5) ? g.program_rest : g.program;
    p = mutate_program(p, space.max_statements, rng, applied);
  } else if (!g.is_program() && rng.bernoulli(o.structural_rate)) {
    // add, remove or change one term, among the moves the size allows
    std::vector<int> moves = {2};
    if (static_cast<int>(g.terms.size()) < space.max_terms) moves.push_back(0);
    if (g.terms.size() > 1) moves.push_back(1);
    const int move = moves[rng.below(moves.size())];
    if (move == 0) {
      g.terms.push_back({random_term(space, rng), random_weight(rng)});
      note("add_term");
    } else if (move == 1) {
      g.terms.erase(g.terms.begin() + static_cast<std::ptrdiff_t>(rng.below(g.terms.size())));
      note("remove_term");
    } else {
      g.terms[rng.below(g.terms.size())].term = random_term(space, rng);
      note("change_term");
    }
  }
  if (rng.bernoulli(o.flip_rate)) {
    g.bias_correction = !g.bias_correction;
    note("flip_bias_correction");
  }
  if (rng.bernoulli(o.flip_rate)) {
    g.cosine_decay = !g.cosine_decay;
    note("flip_cosine");
  }
  if (rng.bernoulli(o.flip_rate)) {
    g.warmup_fraction = g.warmup_fraction > 0 ? 0.0 : 0.05;
    note("flip_warmup");
  }
  if (rng.bernoulli(o.flip_rate)) {
    g.log10_weight_decay = g.log10_weight_decay ? std::nullopt : std::optional<double>(-4.0);
    note("flip_weight_decay");
  }
  if (g.log10_weight_decay && rng.bernoulli(o.flip_rate / 2)) {
    g.decoupled_weight_decay = !g.decoupled_weight_decay;
    note("flip_decoupled");
  }
  if (rng.bernoulli(o.flip_rate / 2)) {
    g.clip_norm = g.clip_norm ? std::nullopt : std::optional<double>(1.0);
    note("flip_clip");
  }
  return repair(std::move(g), space, rng);
}

}  // namespace evoopt::ga
