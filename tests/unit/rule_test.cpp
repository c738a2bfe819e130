// The update rule as data (genome/rule.hpp): a term that is not in the registry, written
// once as an expression, is executed, printed as Python that real PyTorch runs to the same
// parameters, printed as C++ and as LaTeX; the registry's own terms go the same way
// (export_integration_test.cpp runs the exported PyTorch class and libtorch header against
// GenomeOptimizer for every term).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "evoopt/common/files.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/genome/rule.hpp"
#include "evoopt/report/report.hpp"
#include "test_support.hpp"

using namespace evoopt;
using namespace evoopt::genome;
using namespace evoopt::genome::rule;

namespace {

constexpr int kSteps = 6;
const std::vector<double> kTheta0 = {0.5, -1.25, 2.0, 0.0, -0.3};

// The gradient at step t (1-based): a fixed sequence, the same in C++ and Python.
double grad_at(int t, std::size_t i) { return std::sin(0.7 * t + 1.3 * static_cast<double>(i)) * (1.0 + 0.1 * t); }

// The fixture's new term: NAdam-like with a constant μ = β1, (β1·m̂ + (1−β1)·g)/(√v̂+ε).
// It is one expression; nothing else in the codebase names it.
WeightedTerm fixture_term() {
  const Expr one = num(1.0);
  return {(x(Var::Beta1) * x(Var::MHat) + (one - x(Var::Beta1)) * x(Var::G)) / x(Var::Denom), 0.7, "CONSTANT_MU_NADAM"};
}

Genome hyper() {
  Genome g = preset("adam");
  g.beta1 = 0.8;
  g.beta2 = 0.95;
  g.log10_eps = -6.0;
  g.log10_weight_decay = -2.0;  // L2: g ← g + λθ
  g.decoupled_weight_decay = false;
  return g;
}

Rule fixture_rule() { return update_rule(hyper(), {fixture_term(), {term_info(Term::SignGrad).value, -0.2, "SIGN_GRAD"}}); }

// Runs `rule` for kSteps on θ0 with the fixed gradients, as GenomeOptimizer's harness does.
std::vector<double> run_rule(const Rule& rule, double lr) {
  const Genome h = hyper();
  auto p = torch::tensor(kTheta0, torch::kFloat64);
  auto m = torch::zeros_like(p), v = torch::zeros_like(p), c = torch::zeros_like(p);
  for (int t = 1; t <= kSteps; ++t) {
    std::vector<double> grad;
    for (std::size_t i = 0; i < kTheta0.size(); ++i) grad.push_back(grad_at(t, i));
    Env env;
    env.tensor[static_cast<std::size_t>(Var::Param)] = p;
    env.tensor[static_cast<std::size_t>(Var::Grad)] = torch::tensor(grad, torch::kFloat64);
    env.tensor[static_cast<std::size_t>(Var::M)] = m;
    env.tensor[static_cast<std::size_t>(Var::V)] = v;
    env.tensor[static_cast<std::size_t>(Var::C)] = c;
    env.scalar[static_cast<std::size_t>(Var::Step)] = t;
    env.scalar[static_cast<std::size_t>(Var::LrT)] = lr;
    env.scalar[static_cast<std::size_t>(Var::Beta1)] = h.beta1;
    env.scalar[static_cast<std::size_t>(Var::Beta2)] = h.beta2;
    env.scalar[static_cast<std::size_t>(Var::Eps)] = h.eps();
    env.scalar[static_cast<std::size_t>(Var::Wd)] = h.weight_decay();
    env.step = t;
    run(rule, env);
  }
  return std::vector<double>(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
}

}  // namespace

TEST(Rule, ANewTermWrittenOnceRunsAsItsFormulaSays) {
  // Independent float64 reference: the formula by hand, element by element.
  const Genome h = hyper();
  const double lr = 0.01, b1 = h.beta1, b2 = h.beta2, eps = h.eps(), wd = h.weight_decay();
  std::vector<double> theta = kTheta0, m(theta.size()), v(theta.size());
  for (int t = 1; t <= kSteps; ++t)
    for (std::size_t i = 0; i < theta.size(); ++i) {
      const double g = grad_at(t, i) + wd * theta[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const double m_hat = m[i] / (1 - std::pow(b1, t)), denom = std::sqrt(v[i] / (1 - std::pow(b2, t))) + eps;
      const double sign_g = static_cast<double>((g > 0) - (g < 0));
      theta[i] -= lr * (0.7 * (b1 * m_hat + (1 - b1) * g) / denom - 0.2 * sign_g);
    }
  const auto got = run_rule(fixture_rule(), lr);
  for (std::size_t i = 0; i < theta.size(); ++i) EXPECT_NEAR(got[i], theta[i], 1e-12) << i;
  // The state it needs is read off the rule: m and v, not Lion's c, no NAdam coefficients.
  const Rule r = fixture_rule();
  EXPECT_TRUE(r.reads(Var::M) && r.reads(Var::V) && r.reads(Var::MHat));
  EXPECT_FALSE(r.reads(Var::C) || r.reads(Var::Ng));
}

TEST(Rule, ANewTermPrintedAsPythonRunsToTheSameParametersUnderPyTorch) {
  test::TempDir tmp;
  const Genome h = hyper();
  const double lr = 0.01;
  std::ostringstream py;
  py.precision(17);
  py << "import math, torch\n"
     << "p = torch.tensor([" << kTheta0[0];
  for (std::size_t i = 1; i < kTheta0.size(); ++i) py << ", " << kTheta0[i];
  py << "], dtype=torch.float64)\n"
     << "m, v, c = torch.zeros_like(p), torch.zeros_like(p), torch.zeros_like(p)\n"
     << "beta1, beta2 = " << h.beta1 << ", " << h.beta2 << "\n"
     << "group = {\"eps\": " << h.eps() << ", \"weight_decay\": " << h.weight_decay() << "}\n"
     << "state = {\"mu_product\": 1.0}\n"
     << "for t in range(1, " << kSteps + 1 << "):\n"
     << "    p.grad = torch.tensor([math.sin(0.7 * t + 1.3 * i) * (1.0 + 0.1 * t) for i in range(" << kTheta0.size() << ")], dtype=torch.float64)\n"
     << "    lr_t = " << lr << "\n";
  for (const auto& line : python_lines(fixture_rule())) py << "    " << line << "\n";
  py << "print(' '.join(repr(x) for x in p.tolist()))\n";
  const auto script = tmp / "rule.py";
  write_file_atomic(script, py.str());
  const std::string cmd = "/usr/bin/python3 " + script.string() + " > " + (tmp / "out").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << py.str() << read_text_file(tmp / "out");
  std::istringstream out(read_text_file(tmp / "out"));
  const auto want = run_rule(fixture_rule(), lr);
  for (std::size_t i = 0; i < want.size(); ++i) {
    double got = 0;
    ASSERT_TRUE(out >> got) << read_text_file(tmp / "out");
    EXPECT_NEAR(got, want[i], 1e-13) << i;
  }
}

TEST(Rule, ANewTermIsPrintedInCppAndLatexFromTheSameExpression) {
  const auto lines = cpp_lines(fixture_rule());
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  EXPECT_NE(all.find("p.addcdiv_(beta1 * m_hat + (1.0 - beta1) * g, denom, -lr_t * 0.69999999999999996);  // CONSTANT_MU_NADAM"), std::string::npos)
      << all;
  EXPECT_NE(all.find("const torch::Tensor g = p.grad().add(p, o.weight_decay);"), std::string::npos) << all;
  EXPECT_NE(all.find("const double bc1 = 1.0 - std::pow(beta1, t);"), std::string::npos) << all;
  const std::string tex = latex(fixture_term().value);
  EXPECT_EQ(tex, "\\frac{\\beta_1\\,\\hat{m}_t + \\left(1 - \\beta_1\\right)\\,g_t}{\\sqrt{\\hat{v}_t}+\\epsilon}");
  EXPECT_NO_THROW(report::latex_to_mathml(tex));
}

TEST(Rule, FusedFormsForTheSeedTermsAndAGenericAddForTheRest) {
  Genome g = preset("adam");
  g.terms = {{Term::AdamTerm, 1.0}, {Term::Momentum, 0.5}, {Term::Lion, 0.25}};
  g.bias_correction = true;
  std::string all;
  for (const auto& l : python_lines(update_rule(g))) all += l + "\n";
  // m̂ is folded into the coefficient: no m_hat temporary when only fused terms read it.
  EXPECT_NE(all.find("p.addcdiv_(m, denom, value=-lr_t * 1.0 / bc1)  # ADAM_TERM"), std::string::npos) << all;
  EXPECT_NE(all.find("p.add_(m, alpha=-lr_t * 0.5 / bc1)  # MOMENTUM"), std::string::npos) << all;
  EXPECT_NE(all.find("p.add_((c * beta1 + g * (1.0 - beta1)).sign(), alpha=-lr_t * 0.25)  # LION"), std::string::npos) << all;
  EXPECT_EQ(all.find("m_hat ="), std::string::npos) << all;
  // Lion's momentum moves last, after the step has read c_{t-1}.
  EXPECT_LT(all.find("# LION\n"), all.find("c.mul_(beta2).add_(g, alpha=1.0 - beta2)"));
  // Without bias correction nothing divides by bc1.
  g.bias_correction = false;
  all.clear();
  for (const auto& l : python_lines(update_rule(g))) all += l + "\n";
  EXPECT_EQ(all.find("bc1"), std::string::npos) << all;
  EXPECT_NE(all.find("denom = v.sqrt() + group[\"eps\"]"), std::string::npos) << all;
}

TEST(Rule, StateDefinitionsInLatexComeFromTheStatements) {
  Genome g = preset("adam");
  g.terms = {{Term::Lion, 1.0}};
  const Rule r = update_rule(g);
  std::vector<std::string> defs;
  for (const auto& s : r.stmts)
    if (s.kind == Stmt::Kind::Update && s.target != Var::Param) defs.push_back(latex_definition(s));
  ASSERT_EQ(defs.size(), 1u);
  EXPECT_EQ(defs[0], "c_t = \\beta_2\\,c_{t-1} + \\left(1 - \\beta_2\\right)\\,g_t");
}
