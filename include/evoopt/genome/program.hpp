#pragma once
// An update rule as a program (the search space of Chen et al. 2023, "Symbolic Discovery of
// Optimization Algorithms", which found Lion): straight-line statements over per-parameter
// tensors, one per line, `dst = op(operand, ...)`. Adam:
//
//   s0 = interp(s0, g, beta1)
//   r0 = square(g)
//   s1 = interp(s1, r0, beta2)
//   r1 = bias_correct(s0, beta1)
//   r2 = bias_correct(s1, beta2)
//   r3 = rsqrt(r2, eps)
//   u = mul(r1, r3)
//
// Registers: the inputs g (the gradient, after clipping and L2 weight decay) and theta (the
// parameter, after decoupled weight decay), read only; the state slots s0, s1, s2, zero at the
// first step and kept between steps (a slot read before this step writes it holds the last
// step's value); the temporaries r0 … r7, written before they are read, every step; and the
// output u, the update direction: θ ← θ − η_t·u. The learning rate and its schedule, clipping
// and weight decay stay the genome's hyperparameters. A constant operand is a number or one of
// the genome's beta1, beta2, eps, so tuning and mutating those fields reach the program.
//
// Three constants change what surrounds the statements: a program that reads lr (η_t) applies
// the learning rate itself, θ ← θ − u; one that reads wd (λ) applies weight decay itself (the
// genome's L2 or decoupled decay is not added around it). A program may end with the weights
// the model is evaluated with, `x = op(...)` over theta, the state slots and constants (as
// Schedule-Free AdamW trains at y and evaluates at x); x is computed when the model is
// evaluated, from the state after the last step, and the training weights are put back after.
//
// Operations (a, b registers; c, β, ε constants):
//   add(a, b)  sub(a, b)  mul(a, b)  div(a, b) = a/b, 0 where |b| < 1e-12  min(a, b)  max(a, b)
//   neg(a)  abs(a)  sign(a)  sqrt(a) = √|a|  square(a)  exp(a)
//   rsqrt(a, ε) = 1/(√|a| + ε)  clip(a, c) = a clamped to [−c, c]  scale(a, c) = c·a
//   interp(a, b, β) = β·a + (1−β)·b  bias_correct(a, β) = a/(1 − β^t)
//   rms_normalize(a) = a/(rms(a) + 1e-8)  l2_normalize(a) = a/(‖a‖ + 1e-8) (over the tensor)
//   orthogonalize(a): Muon's five Newton–Schulz iterations (genome/rule.hpp), identity on 1-D
//   nesterov(m, g): NAdam's a_t·g + b_t·m at the genome's β1 (term.hpp's NESTEROV; with
//                   bias correction off, (1−β1)·g + β1·m); at most one per program
//   aspect_scale(a) = √max(1, rows/cols)·a, a viewed as orthogonalize views it (Muon's scale)
//
// A genome may carry a second program (Genome::program_rest): then the hidden weight matrices
// step with `program` at η and every other parameter (biases, normalisation parameters, the
// first layer, the head) with `program_rest` at η_aux, Muon's split (optim/muon.hpp).
//
// A program compiles to the update-rule description (genome/rule.hpp), so GenomeOptimizer
// runs it like a weighted sum of terms.
#include <optional>
#include <string>
#include <vector>

#include "evoopt/genome/rule.hpp"

namespace evoopt::genome {
struct Genome;

enum class ProgramOp : std::uint8_t {
  Add,
  Sub,
  Mul,
  Div,
  Min,
  Max,
  Neg,
  Abs,
  Sign,
  Sqrt,
  Square,
  Exp,
  Rsqrt,
  Clip,
  Scale,
  Interp,
  BiasCorrect,
  RmsNormalize,
  L2Normalize,
  Orthogonalize,
  Nesterov,
  AspectScale,
};

// A constant operand: a number, or a value of the step by name: the genome's beta1, beta2, eps,
// weight decay (wd), the scheduled learning rate η_t (lr) or Schedule-Free's averaging weight
// c_t (avg_weight, rule.hpp's average_weight over the η_t so far).
struct Constant {
  enum class Name : std::uint8_t { None, Beta1, Beta2, Eps, Lr, Wd, AvgWeight } name = Name::None;
  double value = 0.0;  // when name is None
  bool operator==(const Constant& o) const;
  std::string text() const;  // "0.9", "beta1"
};

struct Statement {
  ProgramOp op = ProgramOp::Add;
  rule::Var dst = rule::Var::U;
  std::vector<rule::Var> args;  // registers, as many as the operation reads
  std::optional<Constant> c;    // the operation's constant, where it has one
  std::string text() const;     // "s0 = interp(s0, g, beta1)"
  bool operator==(const Statement& o) const { return op == o.op && dst == o.dst && args == o.args && c == o.c; }
};

struct Program {
  std::vector<Statement> statements;

  static constexpr std::size_t kMaxStatements = 32;

  // One statement per line. Throws evoopt::Error naming the statement ("program statement 3
  // (r1 = foo(g)): unknown operation 'foo'") for a statement that does not parse or is invalid.
  static Program parse(const std::vector<std::string>& lines);
  std::vector<std::string> lines() const;
  // Every statement well formed, temporaries written before they are read, u written, at
  // most one nesterov, at most kMaxStatements, and u depending on g (through any state);
  // throws evoopt::Error naming the statement or the problem.
  void validate() const;
  bool uses(ProgramOp op) const;
  bool reads(Constant::Name name) const;  // a constant operand names the hyperparameter
  // The last statement writes x, the evaluation point (read only at evaluation, not a step).
  bool has_evaluation_point() const;
  bool operator==(const Program& o) const { return statements == o.statements; }
  bool operator!=(const Program& o) const { return !(*this == o); }
};

const char* program_op_name(ProgramOp op);
// Every operation, in the table's order, and what each reads: its register operands and
// whether it takes a constant.
const std::vector<ProgramOp>& program_ops();
int program_op_registers(ProgramOp op);
bool program_op_takes_constant(ProgramOp op);

// The same function in a canonical text: statements that leave their destination as it was
// (d = interp(d, d, β), scale(d, 1), min(d, d), max(d, d)) and statements that cannot reach u dropped (through the
// state slots, across steps), the operands of add, mul, min and max in register order, and
// the temporaries renamed r0, r1, ... in the order they are first written. Constants are
// operands only, so there is no expression of constants to fold.
Program simplify(const Program& p);

// What a program computes, probed as Chen et al. probe theirs: the program genome's rule run
// for kProbeSteps steps on fixed pseudo-random parameters and gradients (a 5×4 matrix and a
// vector of 6, float64, drawn from evoopt's own generator), every output u rounded to 9
// significant digits and hashed. Programs that compute the same function (up to rounding) share
// it. `finite` is false when an output was NaN or infinite; `reads_g` is false when u came out
// the same for another gradient sequence.
struct Probe {
  std::uint64_t fingerprint = 0;
  bool finite = true;
  bool reads_g = true;
};
inline constexpr int kProbeSteps = 5;
Probe probe(const Genome& program_genome);

// The weighted sum of terms of `terms_genome` as a program: its state updates, each term's
// value and their weighted sum as u. Training with it gives the term genome's parameters up
// to rounding (tested to 1e-6 in float64).
Program program_of_terms(const Genome& terms_genome);
// The program genome with `terms_genome`'s hyperparameters and program_of_terms as its rule.
Genome program_genome(const Genome& terms_genome);

// The rule of one step of a (one-program) genome: g (L2 decay), decoupled decay, NAdam's
// coefficients where nesterov is used, c_t where avg_weight is read, the program's statements
// (temporaries as lets, state slots assigned in place; not the evaluation point), then
// θ ← θ − η_t·u (θ ← θ − u where the program reads lr). With `fuse`, a square feeding a slot's
// EMA runs as one addcmul_, and an output u = a·b as θ.addcmul_(a, b, −η_t) (no buffer for u),
// as torch's optimizers fuse them; without, each statement as written (the probe, LaTeX).
rule::Rule program_rule(const Genome& program_genome, bool fuse = true);
// The evaluation point as a rule of one statement, x = ... (empty without one).
rule::Rule evaluation_rule(const Genome& program_genome);

// The parts of a genome with a second program, each a one-program genome: the hidden
// matrices' (its `program` at its η) and the rest's (`program_rest` at η_aux). Clipping stays
// the whole genome's (over all parameters). Without a second program both parts are the genome.
enum class Part : std::uint8_t { Hidden, Rest };
Genome program_part(const Genome& g, Part part);

// The program forms of the presets (for `evoopt genome program` and the program search's
// seeds): every term preset compiled (program_genome), and the rules the weighted sums cannot
// express: nadam (NAdam with its momentum schedule, ψ = 0.004), muon (Muon on the hidden
// matrices, AdamW on the rest at η_aux, two programs) and schedule_free_adamw (Schedule-Free
// AdamW: slots for v, z − y and x − y, evaluated at x).
std::vector<std::string> program_preset_names();
Genome program_preset(const std::string& name);

}  // namespace evoopt::genome
