#pragma once
// The update rule as data: one description that GenomeOptimizer executes and the
// exporters print (PyTorch, libtorch C++, LaTeX).
//
//   Expr  a value over the rule's variables (g, m, m̂, √v̂+ε, β1, ...) built from the
//         operations in the op table (src/genome/rule.cpp); each operation there has its
//         evaluation on tensors and doubles and its spelling in Python, C++ and LaTeX, so
//         a new operation is one row of that table and a new term one row of the term
//         registry (term.cpp), whose value is an Expr.
//   Stmt  one statement of a step on one parameter: `let` a temporary, an in-place
//         method chain on a tensor (m.mul_(β1).add_(g, 1−β1); p.addcdiv_(m, d, −η/bc1)),
//         or NAdam's coefficients.
//   Rule  the statements of one step for one parameter, built from a genome by
//         update_rule(); the caller (optimizer, exporter) provides the harness around
//         it: the gradient, the state tensors, t and the scheduled learning rate η_t.
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace evoopt::genome {
struct Genome;
}

namespace evoopt::genome::rule {

// What a rule reads and writes. Tensors are per parameter, scalars per step.
enum class Var : std::uint8_t {
  Param,  // θ (updated in place)
  Grad,   // the parameter's .grad (after clipping)
  G,      // the gradient the rule uses: Grad, plus λθ under L2 weight decay
  M,      // state: EMA of g with β1
  V,      // state: EMA of g² with β2
  C,      // state: Lion's momentum, EMA of g with β2, updated after the step reads it
  MHat,   // m̂ = m / bc1
  Denom,  // √v̂ + ε
  Step,   // t, 1-based (scalar)
  LrT,    // η_t: the learning rate times the schedule's factor at step t
  Beta1,  //
  Beta2,  //
  Eps,    //
  Wd,     // λ
  Bc1,    // 1 − β1^t
  Bc2,    // 1 − β2^t
  Ng,     // NESTEROV's coefficient of g at step t
  Nm,     // NESTEROV's coefficient of m at step t
  // A program's registers (genome/program.hpp):
  S0,    // state slots, zero at the first step
  S1,    //
  S2,    //
  R0,    // temporaries
  R1,    //
  R2,    //
  R3,    //
  R4,    //
  R5,    //
  R6,    //
  R7,    //
  U,     // the update direction: θ ← θ − η_t·u
  AvgW,  // Schedule-Free's averaging weight at t: c_t = w_t/Σ_{i≤t} w_i, w_t = (max_{i≤t} η_i)² (scalar)
  X,     // a program's evaluation point (the weights the model is evaluated with)
};
inline constexpr std::size_t kVarCount = static_cast<std::size_t>(Var::X) + 1;

struct VarInfo {
  Var id;
  bool tensor;                  // per-parameter tensor (else a double)
  std::string_view python;      // how the exported PyTorch step spells it
  std::string_view cpp;         // ... and the exported libtorch step
  std::string_view latex;       // as a term reads it (c is read before its update: c_{t−1})
  std::string_view latex_prev;  // state: the value before this step's update
  std::string_view latex_next;  // state: the value after it
  std::string_view state_key;   // state: its key in the optimizer state ("exp_avg"); empty otherwise
  bool reads_bias_correction;   // its value depends on the genome's bias-correction flag
};
const VarInfo& var_info(Var v);

// Operations. The table in rule.cpp gives each its arity, evaluation and spellings.
enum class Op : std::uint8_t {
  Var,            // a variable
  Num,            // a constant
  Add,            // a + b
  Sub,            // a − b
  Mul,            // a · b
  Div,            // a / b
  Neg,            // −a
  Pow,            // a^b (scalars)
  Sqrt,           // √a
  Sign,           // sign(a)
  Exp,            // e^a
  AddScaled,      // a + c·b in one rounding (torch's a.add(b, alpha=c))
  Abs,            // |a|
  Min,            // elementwise min(a, b)
  Max,            // elementwise max(a, b)
  Clip,           // a clamped to [−c, c] (c a scalar)
  SafeDiv,        // a / b, 0 where |b| < kSafeDivFloor
  RmsNorm,        // a / (rms(a) + 1e-8), rms over the whole tensor
  L2Norm,         // a / (‖a‖ + 1e-8)
  Orthogonalize,  // orthogonalize(a) below
  RsqrtEps,       // 1/(√|a| + c), c a scalar, in one buffer
  AspectScale,    // √max(1, rows/cols)·a, a viewed as a matrix as orthogonalize views it; a itself on 1-D
};
inline constexpr double kSafeDivFloor = 1e-12;

struct Expr {
  Op op = Op::Num;
  Var var = Var::G;  // Op::Var
  double num = 0.0;  // Op::Num
  std::vector<Expr> args;
  bool is_tensor() const;
  bool reads(Var v) const;
  bool operator==(const Expr& o) const;
};

// Builders, so a term reads as its formula: x(Var::MHat) / x(Var::Denom).
Expr x(Var v);
Expr num(double v);
Expr operator+(Expr a, Expr b);
Expr operator-(Expr a, Expr b);
Expr operator*(Expr a, Expr b);
Expr operator/(Expr a, Expr b);
Expr operator-(Expr a);
Expr pow(Expr a, Expr b);
Expr sqrt(Expr a);
Expr sign(Expr a);
Expr exp(Expr a);
Expr add_scaled(Expr a, Expr b, Expr alpha);
Expr abs(Expr a);
Expr minimum(Expr a, Expr b);
Expr maximum(Expr a, Expr b);
Expr clip(Expr a, Expr c);
Expr safe_div(Expr a, Expr b);
Expr rms_normalize(Expr a);
Expr l2_normalize(Expr a);
Expr orthogonalize(Expr a);
Expr rsqrt_eps(Expr a, Expr eps);
Expr aspect_scale(Expr a);
Expr substitute(Expr e, Var from, const Expr& to);

// In-place methods of a statement's chain, as torch spells them.
enum class Method : std::uint8_t {
  Mul,      // x.mul_(a)
  Add,      // x.add_(a, alpha=b)
  AddCMul,  // x.addcmul_(a, b, value=c)
  AddCDiv,  // x.addcdiv_(a, b, value=c)
};
struct Call {
  Method method;
  std::vector<Expr> args;
};

struct Stmt {
  enum class Kind : std::uint8_t {
    Let,            // target = value (a temporary: G, MHat, Denom, Bc1, Bc2, a program's r0…r7 and u)
    Update,         // target.call_1(..).call_2(..), in place (state, or the parameter)
    Assign,         // target.copy_(value): a program's state slot takes a new value in place
    Nesterov,       // (Ng, Nm) = NESTEROV's coefficients at t (reads and updates the state's μ product)
    AverageWeight,  // AvgW = Schedule-Free's c_t (reads and updates the state's largest η and weight sum)
  };
  Kind kind;
  Var target;
  Expr value;                    // Let
  std::vector<Call> calls;       // Update
  bool bias_correction = false;  // Nesterov: NAdam's coefficients, else (1−β1, β1)
  std::string comment;           // shown in exports: the term's name
};

struct Rule {
  std::vector<Stmt> stmts;
  bool reads(Var v) const;  // some statement reads or writes v
};

// A weighted term of the update θ ← θ − η_t·Σ weight·value.
struct WeightedTerm {
  Expr value;
  double weight;
  std::string name;
};
// The rule of one step: the gradient (L2 decay), the state updates the terms read, bias
// correction, decoupled decay, the terms applied to θ in order, Lion's momentum last.
// `hyper` gives β's, ε, weight decay and the flags; `terms` the update.
Rule update_rule(const Genome& hyper, const std::vector<WeightedTerm>& terms);
Rule update_rule(const Genome& genome);  // its own terms, from the registry

// Executing a rule: the variables' values for one parameter.
struct Env {
  std::array<torch::Tensor, kVarCount> tensor;
  std::array<double, kVarCount> scalar{};
  std::int64_t step = 0;
  double mu_product = 1.0;  // NAdam's Π μ_i, read and updated by a Nesterov statement
  double lr_max = 0.0;      // the largest η_i so far, read and updated by an AverageWeight statement
  double weight_sum = 0.0;  // Σ w_i, likewise
};
// The scalars of step t (1-based): t, η_t and the genome's β1, β2, ε and λ.
void set_step_scalars(Env& env, const Genome& g, std::int64_t t, double lr_t);
void run(const Rule& rule, Env& env);
torch::Tensor evaluate(const Expr& e, const Env& env);  // a tensor-valued expression

// Five (or `steps`) Newton–Schulz iterations X ← a·X + (b·A + c·A²)·X, A = X·Xᵀ, with
// (a, b, c) = (3.4445, −4.7750, 2.0315), on x viewed as a matrix (rows = size(0), conv
// kernels as (out, in·k·k)) scaled to Frobenius norm 1 (÷ (‖x‖ + 1e-7)), transposed while it
// runs when it has more rows than columns: an approximation of U·Vᵀ of x = U·S·Vᵀ (Muon,
// Jordan et al. 2024). Returns x's shape; a tensor of fewer than 2 dimensions is copied as it is.
torch::Tensor orthogonalize(const torch::Tensor& x, int steps = 5);
// Schedule-Free AdamW's averaging weight at a step whose learning rate is lr_t (Defazio et al.
// 2024, weighted as facebookresearch/schedule_free weights by default, r = 0 and power 2):
// lr_max ← max(lr_max, lr_t), weight_sum ← weight_sum + lr_max², c = lr_max²/weight_sum (0
// while the sum is 0).
double average_weight(double lr_t, double& lr_max, double& weight_sum);
// √max(1, rows/cols)·x with x viewed as orthogonalize views it (Muon's scale); a copy of x
// for a tensor of fewer than 2 dimensions.
torch::Tensor aspect_scale(const torch::Tensor& x);

// Spellings. Each statement is one line without indentation; comments included.
std::vector<std::string> python_lines(const Rule& rule);
std::vector<std::string> cpp_lines(const Rule& rule);
std::string python(const Expr& e);
std::string cpp(const Expr& e);
std::string latex(const Expr& e);
// A state update as a definition: "m_t = \beta_1\,m_{t-1} + ...".
std::string latex_definition(const Stmt& update);

}  // namespace evoopt::genome::rule
