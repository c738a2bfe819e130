// Update rules as programs (genome/program.hpp): every weighted sum of terms compiles to a
// program that trains to the same parameters (float64, 1e-6 over 200 steps); the text form
// reads back; bad programs are one-line errors naming the statement; program genomes read,
// write, hash and continue after a save like term genomes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "evoopt/common/error.hpp"
#include "evoopt/common/rng.hpp"
#include "evoopt/ga/operators.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/genome/program.hpp"
#include "evoopt/optim/algorithm.hpp"
#include "evoopt/optim/muon.hpp"

using namespace evoopt;
using genome::Genome;
using genome::Program;

namespace {

std::vector<std::pair<std::string, torch::Tensor>> start() {
  std::vector<std::pair<std::string, torch::Tensor>> ps;
  const std::vector<std::vector<std::int64_t>> shapes = {{6, 4}, {3, 2, 3, 3}, {5}};
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    const auto n = torch::arange(torch::tensor(shapes[k]).prod().item<std::int64_t>(), torch::kFloat64);
    ps.emplace_back("p" + std::to_string(k), (0.5 * torch::sin(1.7 * n + static_cast<double>(k))).reshape(shapes[k]).requires_grad_(true));
  }
  return ps;
}

// A moving quadratic: g = (i % 5 + 1)/2·(θ − cos(i + k)) + 0.3·sin(0.7·t + 1.3·i).
void set_grads(std::vector<std::pair<std::string, torch::Tensor>>& ps, int t) {
  for (std::size_t k = 0; k < ps.size(); ++k) {
    auto& p = ps[k].second;
    const auto i = torch::arange(p.numel(), torch::kFloat64).reshape(p.sizes());
    p.mutable_grad() = (torch::fmod(i, 5) + 1) * 0.5 * (p.detach() - torch::cos(i + static_cast<double>(k))) + 0.3 * torch::sin(0.7 * t + 1.3 * i);
  }
}

std::vector<torch::Tensor> train(const Genome& g, int steps) {
  auto ps = start();
  optim::AlgorithmOptimizer opt(g, ps, steps);
  for (int t = 1; t <= steps; ++t) set_grads(ps, t), opt.step(t);
  std::vector<torch::Tensor> out;
  for (auto& [name, p] : ps) out.push_back(p.detach());
  return out;
}

double max_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double d = 0;
  for (std::size_t k = 0; k < a.size(); ++k) d = std::max(d, (a[k] - b[k]).abs().max().item<double>());
  return d;
}

}  // namespace

TEST(Program, EveryTermGenomeTrainsAsItsProgram) {
  std::vector<Genome> genomes;
  for (const auto& name : genome::preset_names())
    if (genome::preset(name).is_terms()) genomes.push_back(genome::preset(name));
  // Every term alone and random sums, with and without bias correction, L2 or decoupled
  // decay, a schedule and clipping.
  Rng rng(5);
  for (const auto& info : genome::term_registry()) {
    Genome g = genome::preset("adam");
    g.terms = {{info.id, 0.7}};
    g.log10_lr = -2.0;
    genomes.push_back(g);
    g.bias_correction = false;
    genomes.push_back(g);
  }
  const auto extended = genome::vocabulary_terms(genome::Vocabulary::Extended);
  for (int i = 0; i < 12; ++i) {
    Genome g = genome::preset("adam");
    g.terms.clear();
    for (int k = 0; k < 3; ++k) g.terms.push_back({extended[rng.below(extended.size())], rng.uniform(-1.5, 2.5)});
    g.log10_lr = rng.uniform(-3.0, -1.5);
    g.beta1 = rng.uniform(0.5, 0.95);
    g.beta2 = rng.uniform(0.9, 0.999);
    g.bias_correction = i % 2 == 0;
    g.log10_weight_decay = i % 3 == 0 ? std::nullopt : std::optional<double>(-3.0);
    g.decoupled_weight_decay = i % 4 != 1;
    g.warmup_fraction = 0.1;
    g.cosine_decay = i % 2 == 1;
    if (i % 3 == 2) g.clip_norm = 0.5;
    if (g.canonical().terms.empty()) continue;
    genomes.push_back(g);
  }
  for (const auto& g : genomes) {
    SCOPED_TRACE(g.formula() + "; " + g.hyperparameters());
    const Genome p = genome::program_genome(g);
    EXPECT_TRUE(p.is_program());
    EXPECT_EQ(Program::parse(p.program.lines()), p.program);  // the text reads back
    const double d = max_difference(train(g, 200), train(p, 200));
    EXPECT_LE(d, 1e-6);
  }
  // The comparison can fail: another rule, or the same one with another β1, ends elsewhere.
  EXPECT_GT(max_difference(train(genome::preset("adam"), 200), train(genome::program_genome(genome::preset("lion")), 200)), 1e-3);
  Genome adam = genome::program_genome(genome::preset("adam"));
  adam.beta1 = 0.8;
  EXPECT_GT(max_difference(train(genome::preset("adam"), 200), train(adam, 200)), 1e-3);
}

TEST(Program, AdamReadsAsThePaperWritesIt) {
  const Program p = genome::program_of_terms(genome::preset("adam"));
  EXPECT_EQ(p.lines(),
            (std::vector<std::string>{"s0 = interp(s0, g, beta1)", "r0 = square(g)", "s1 = interp(s1, r0, beta2)", "r1 = bias_correct(s0, beta1)",
                                      "r2 = bias_correct(s1, beta2)", "r2 = rsqrt(r2, eps)", "r3 = mul(r1, r2)", "u = scale(r3, 1)"}));
  const Program lion = genome::program_of_terms(genome::preset("lion"));
  EXPECT_EQ(lion.lines().back(), "s2 = interp(s2, g, beta2)");  // Lion's momentum moves after the step
}

TEST(Program, BadProgramsAreOneLineErrorsNamingTheStatement) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"u = foo(g)"}, "program statement 1 (u = foo(g)): unknown operation 'foo'"},
      {{"r0 = sign(g)", "u = add(r0, r1)"}, "program statement 2 (u = add(r0, r1)): reads r1 before any statement writes it"},
      {{"g = sign(g)", "u = sign(g)"}, "program statement 1 (g = sign(g)): g is an input: it cannot be written"},
      {{"u = interp(g, g)"}, "interp takes 3 operands, got 2"},
      {{"u = interp(s0, g, 1.5)"}, "the weight of interp must be in [0, 1], got 1.5"},
      {{"u = rsqrt(g, zero)"}, "the constant of rsqrt is 'zero', not a number, beta1, beta2, eps, lr, wd or avg_weight"},
      {{"u = sign(x9)"}, "operand 1 of sign is 'x9', not a register"},
      {{"u sign(g)"}, "expected 'register = operation(operands)'"},
      {{"r0 = sign(g)"}, "program never writes u, the update direction"},
      {{"s0 = interp(s0, theta, 0.9)", "u = sign(s0)"}, "program's output u does not depend on the gradient g"},
      {{"r0 = nesterov(s0, g)", "r1 = nesterov(s0, g)", "u = add(r0, r1)"}, "a second nesterov"},
      {{}, "program has no statements"},
      {{"u = sign(g)", "x = add(theta, g)"}, "x, the evaluation point, reads theta and the state slots only, not g"},
      {{"x = add(theta, s0)", "u = sign(g)"}, "x, the evaluation point, is written by the last statement only"},
  };
  for (const auto& [lines, message] : cases) {
    try {
      Program::parse(lines);
      ADD_FAILURE() << "accepted: " << (lines.empty() ? "" : lines.front());
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
  // A state slot written after u reads it still feeds u in the next step.
  EXPECT_NO_THROW(Program::parse({"u = sign(s0)", "s0 = interp(s0, g, 0.9)"}));
  std::vector<std::string> long_program(Program::kMaxStatements + 1, "u = sign(g)");
  EXPECT_THROW(Program::parse(long_program), Error);
}

TEST(Program, ProgramGenomesReadWriteAndHash) {
  Genome g = genome::program_genome(genome::preset("adamw"));
  const auto j = g.to_json();
  EXPECT_EQ(j.at("version"), 3);
  EXPECT_EQ(j.at("algorithm"), "program");
  EXPECT_EQ(j.at("program").size(), g.program.statements.size());
  EXPECT_EQ(Genome::from_json(j), g);
  EXPECT_EQ(genome::preset("adamw").to_json().at("version"), 2);  // a term genome's file is unchanged
  EXPECT_NE(g.hash(), genome::preset("adamw").hash());
  Genome h = g;
  h.program.statements.back().c = genome::Constant{genome::Constant::Name::None, 2.0};
  EXPECT_NE(h.hash(), g.hash());
  EXPECT_GT(genome::genome_distance(g, h), 0.0);
  EXPECT_EQ(genome::genome_distance(g, g), 0.0);
  // β's the program does not name do not split the hash.
  Genome sign = genome::preset("adam");
  sign.algorithm = genome::Algorithm::Program;
  sign.terms.clear();
  sign.program = Program::parse({"u = sign(g)"});
  Genome other = sign;
  other.beta1 = 0.5;
  EXPECT_EQ(sign.hash(), other.hash());
  EXPECT_NE(sign.formula().find("program: u = sign(g)"), std::string::npos) << sign.formula();
  // Format errors name the field.
  auto bad = j;
  bad["version"] = 2;
  EXPECT_THROW(Genome::from_json(bad), Error);
  bad = j;
  bad["program"] = {"u = foo(g)"};
  try {
    Genome::from_json(bad);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown operation 'foo'"), std::string::npos) << e.what();
  }
  bad = genome::preset("adam").to_json();
  bad["program"] = {"u = sign(g)"};
  EXPECT_THROW(Genome::from_json(bad), Error);  // a program without "algorithm": "program"
}

// The operations beyond the terms' own: orthogonalize is Muon's Newton–Schulz, div is 0 where
// the divisor vanishes, clip and the norms act as documented; a program with them continues
// bit for bit after a save.
TEST(Program, OperationsActAsDocumentedAndAProgramContinuesAfterASave) {
  Genome g = genome::preset("adam");
  g.algorithm = genome::Algorithm::Program;
  g.terms.clear();
  g.log10_lr = -2.0;
  g.program = Program::parse({"s0 = interp(s0, g, beta1)", "r0 = orthogonalize(s0)", "r1 = div(g, s1)", "r1 = clip(r1, 2)", "r2 = rms_normalize(r1)",
                              "r3 = l2_normalize(g)", "r4 = min(r2, r3)", "r4 = max(r4, r0)", "u = add(r0, r4)", "s1 = interp(s1, g, 0.5)"});
  auto ps = start();
  genome::rule::Env env;
  const auto m = torch::randn({6, 4}, torch::kFloat64);
  env.tensor[static_cast<std::size_t>(genome::rule::Var::R0)] = m;
  EXPECT_TRUE(
      torch::equal(genome::rule::evaluate(genome::rule::orthogonalize(genome::rule::x(genome::rule::Var::R0)), env), optim::orthogonalize(m)));
  const auto zero = torch::zeros({3}, torch::kFloat64);
  env.tensor[static_cast<std::size_t>(genome::rule::Var::R1)] = zero;
  const auto q = genome::rule::evaluate(genome::rule::safe_div(genome::rule::x(genome::rule::Var::R0), genome::rule::x(genome::rule::Var::R1)), [&] {
    genome::rule::Env e;
    e.tensor[static_cast<std::size_t>(genome::rule::Var::R0)] = torch::ones({3}, torch::kFloat64);
    e.tensor[static_cast<std::size_t>(genome::rule::Var::R1)] = zero;
    return e;
  }());
  EXPECT_TRUE(torch::equal(q, zero));
  // Straight through, and saved at step 9 then loaded into a fresh optimizer.
  const auto straight = train(g, 20);
  for (const auto& t : straight) EXPECT_TRUE(torch::isfinite(t).all().item<bool>());
  auto resumed = start();
  optim::AlgorithmOptimizer a(g, resumed, 20);
  for (int t = 1; t <= 9; ++t) set_grads(resumed, t), a.step(t);
  std::ostringstream saved;
  {
    torch::serialize::OutputArchive archive;
    a.save(archive);
    archive.save_to(saved);
  }
  optim::AlgorithmOptimizer b(g, resumed, 20);
  std::istringstream in(saved.str());
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  b.load(archive);
  for (int t = 10; t <= 20; ++t) set_grads(resumed, t), b.step(t);
  for (std::size_t k = 0; k < straight.size(); ++k) EXPECT_TRUE(torch::equal(resumed[k].second.detach(), straight[k])) << k;
}

// Simplification keeps the function and a canonical text; the probe tells programs apart by
// what they compute, so equivalent programs share a genome hash (and train once).
TEST(Program, SimplifyDropsWhatCannotReachUAndProbesHashTheFunction) {
  const auto lines = [](const std::vector<std::string>& l) { return genome::simplify(Program::parse(l)).lines(); };
  EXPECT_EQ(lines({"r4 = sign(g)", "r1 = abs(g)", "u = scale(r4, 1)"}), (std::vector<std::string>{"r0 = sign(g)", "u = scale(r0, 1)"}));
  // A slot feeds u in the next step; one that never reaches u goes.
  EXPECT_EQ(lines({"u = sign(s0)", "s0 = interp(s0, g, 0.9)", "s1 = interp(s1, g, 0.5)"}),
            (std::vector<std::string>{"u = sign(s0)", "s0 = interp(s0, g, 0.9)"}));
  EXPECT_EQ(lines({"r2 = sign(g)", "u = mul(r2, g)"}), lines({"r6 = sign(g)", "u = mul(g, r6)"}));  // names and operand order
  // An overwritten u: only the last write and what it reads stay.
  EXPECT_EQ(lines({"u = sign(g)", "r0 = abs(g)", "u = scale(r0, 2)"}), (std::vector<std::string>{"r0 = abs(g)", "u = scale(r0, 2)"}));
  // Statements that leave their destination as it was go.
  EXPECT_EQ(lines({"s0 = interp(s0, g, 0.9)", "s0 = interp(s0, s0, 0.5)", "s0 = scale(s0, 1)", "s0 = max(s0, s0)", "u = sign(s0)"}),
            (std::vector<std::string>{"s0 = interp(s0, g, 0.9)", "u = sign(s0)"}));
  // Adam compiled from terms is already simple.
  const Program adam = genome::program_of_terms(genome::preset("adam"));
  EXPECT_EQ(genome::simplify(adam), adam);

  const auto genome_of = [](const std::vector<std::string>& l) {
    Genome g = genome::preset("adam");
    g.algorithm = genome::Algorithm::Program;
    g.terms.clear();
    g.program = Program::parse(l);
    return g;
  };
  // The simplified program trains bit for bit as the original.
  const Genome noisy = genome_of({"s0 = interp(s0, g, beta1)", "r5 = square(g)", "r7 = sign(s0)", "s2 = interp(s2, r5, 0.3)", "u = add(r7, g)"});
  EXPECT_EQ(noisy.canonical().program.statements.size(), 3u);
  const auto a = train(noisy, 30), b = train(noisy.canonical(), 30);
  for (std::size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(torch::equal(a[k], b[k]));
  // Equal functions, equal hashes: 2·g written two ways; sign(g) is another function.
  const Genome twice = genome_of({"u = scale(g, 2)"}), sum = genome_of({"r3 = add(g, g)", "u = scale(r3, 1)"});
  EXPECT_EQ(genome::probe(twice).fingerprint, genome::probe(sum).fingerprint);
  EXPECT_EQ(twice.hash(), sum.hash());
  EXPECT_NE(twice.hash(), genome_of({"u = sign(g)"}).hash());
  Genome slower = twice;
  slower.log10_lr = -4.0;
  EXPECT_NE(slower.hash(), twice.hash());  // the hyperparameters still count
  // Degenerate programs: an overflow is not finite; a rule blind to g is told by the probe too.
  const auto overflow = genome::probe(genome_of({"r0 = exp(g)", "r0 = exp(r0)", "r0 = exp(r0)", "r0 = exp(r0)", "u = mul(r0, g)"}));
  EXPECT_FALSE(overflow.finite);
  const auto blind = genome::probe(genome_of({"r0 = sub(g, g)", "r1 = sign(theta)", "u = add(r0, r1)"}));
  EXPECT_TRUE(blind.finite);
  EXPECT_FALSE(blind.reads_g);
  EXPECT_TRUE(genome::probe(twice).reads_g);
}

// The search's operators on programs (ga/operators.hpp): thousands of mutations and crossovers
// from the presets' programs stay valid and within the length limit, every move happens, and
// the draws are a function of the generator's seed.
TEST(Program, MutationAndCrossoverKeepProgramsValid) {
  ga::SearchSpace space;
  space.rules = ga::RuleSpace::Programs;
  space.max_statements = 14;
  const Program adam = genome::program_of_terms(genome::preset("adam")), lion = genome::program_of_terms(genome::preset("lion"));
  Rng rng(11);
  std::set<std::string> moves;
  std::set<std::uint64_t> functions;
  int changed = 0;
  Program p = adam;
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::string> applied;
    const Program q = ga::mutate_program(p, space.max_statements, rng, &applied);
    ASSERT_NO_THROW(q.validate()) << q.lines().back();
    ASSERT_LE(q.statements.size(), 14u);
    moves.insert(applied.begin(), applied.end());
    changed += q != p;
    p = i % 50 == 49 ? adam : q;  // a walk, restarted now and then
    Genome g = genome::preset("adam");
    g.algorithm = genome::Algorithm::Program;
    g.terms.clear();
    g.program = q;
    const auto probe = genome::probe(g);
    if (probe.finite && probe.reads_g) functions.insert(probe.fingerprint);
  }
  EXPECT_EQ(moves, (std::set<std::string>{"change_constant", "change_op", "change_operand", "delete_statement", "insert_statement"}));
  EXPECT_GT(changed, 1900);
  EXPECT_GT(functions.size(), 300u);  // the walk reaches many functions (386 with this seed; many moves are neutral)
  for (int i = 0; i < 500; ++i) {
    const Program c = ga::crossover_programs(adam, lion, space.max_statements, rng);
    ASSERT_NO_THROW(c.validate());
  }
  // Through the genome operators: random genomes of the program space, crossover and mutation.
  ga::MutationOptions options;
  for (int i = 0; i < 200; ++i) {
    const Genome a = ga::random_genome(space, rng), b = ga::random_genome(space, rng);
    ASSERT_TRUE(a.is_program());
    const Genome child = ga::mutate(ga::crossover(a, b, space, rng), space, options, rng);
    ASSERT_TRUE(child.is_program());
    ASSERT_NO_THROW(child.validate(genome::Bounds::kHardMaxTerms));
  }
  Rng x(3), y(3);
  EXPECT_EQ(ga::mutate_program(adam, 14, x), ga::mutate_program(adam, 14, y));
}

// A genome with two programs (hidden matrices, and the rest at η_aux): reads and writes, its
// hash and distance see both programs, bad input names the program, the search's operators
// keep both valid, and it trains each part with its own rule and learning rate.
TEST(Program, TwoProgramGenomesReadWriteHashAndTrainEachPart) {
  const Genome muon = genome::program_preset("muon");
  ASSERT_TRUE(muon.has_program_rest());
  const auto j = muon.to_json();
  EXPECT_EQ(j.at("program_rest").size(), muon.program_rest.statements.size());
  EXPECT_EQ(Genome::from_json(j), muon);
  Genome other = muon;
  other.program_rest = Program::parse({"u = sign(g)"});
  EXPECT_NE(other.hash(), muon.hash());
  EXPECT_GT(genome::genome_distance(muon, other), 0.0);
  Genome slower = muon;
  slower.log10_aux_lr -= 1;
  EXPECT_NE(slower.hash(), muon.hash());  // η_aux is read
  EXPECT_NE(muon.formula().find("program (the rest, η_aux): "), std::string::npos) << muon.formula();
  auto bad = j;
  bad["program_rest"] = {"u = foo(g)"};
  try {
    Genome::from_json(bad);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("program_rest: program statement 1 (u = foo(g)): unknown operation 'foo'"), std::string::npos) << e.what();
  }
  bad = genome::preset("adam").to_json();
  bad["program_rest"] = {"u = sign(g)"};
  EXPECT_THROW(Genome::from_json(bad), Error);
  // Training: the parameters named hidden (p0) follow the first program at η, the rest the
  // second at η_aux, each bit for bit as a one-program run.
  Genome two = genome::program_genome(genome::preset("adam"));
  two.program_rest = genome::program_of_terms(genome::preset("sgd"));
  two.log10_aux_lr = -1.0;
  auto ps = start();
  optim::AlgorithmOptimizer opt(two, ps, 30, {"p0"});
  EXPECT_EQ(opt.split(), "program: p0 [6, 4]; program_rest: p1 [3, 2, 3, 3], p2 [5]");
  for (int t = 1; t <= 30; ++t) set_grads(ps, t), opt.step(t);
  const auto adam = train(genome::program_genome(genome::preset("adam")), 30), sgd = train(genome::program_genome(genome::preset("sgd")), 30);
  EXPECT_TRUE(torch::equal(ps[0].second.detach(), adam[0]));
  EXPECT_TRUE(torch::equal(ps[1].second.detach(), sgd[1]));
  EXPECT_TRUE(torch::equal(ps[2].second.detach(), sgd[2]));
  // The operators: children of two-program genomes keep two valid programs.
  ga::SearchSpace space;
  space.rules = ga::RuleSpace::Programs;
  Rng rng(5);
  const Genome nadam = genome::program_preset("nadam");
  int rest_changed = 0;
  for (int i = 0; i < 200; ++i) {
    const Genome child = ga::mutate(ga::crossover(muon, i % 2 ? nadam : muon, space, rng), space, ga::MutationOptions{}, rng);
    ASSERT_NO_THROW(child.validate(genome::Bounds::kHardMaxTerms));
    rest_changed += child.has_program_rest() && child.program_rest != muon.program_rest;
  }
  EXPECT_GT(rest_changed, 10);
}

// The program presets: every term preset compiled, and NAdam, Muon and Schedule-Free AdamW
// (optimizers_test.cpp checks those against the published algorithms); the evaluation point
// survives simplification and splits the hash.
TEST(Program, ProgramPresetsAndTheEvaluationPoint) {
  for (const auto& name : genome::program_preset_names()) {
    SCOPED_TRACE(name);
    const Genome g = genome::program_preset(name);
    EXPECT_TRUE(g.is_program());
    EXPECT_NO_THROW(g.validate(genome::Bounds::kHardMaxTerms));
    EXPECT_EQ(Genome::from_json(g.to_json()), g);
    const auto p = genome::probe(g);
    EXPECT_TRUE(p.finite && p.reads_g);
  }
  EXPECT_THROW(genome::program_preset("ademamix"), Error);
  const Genome sf = genome::program_preset("schedule_free_adamw");
  EXPECT_TRUE(sf.evaluates_elsewhere());
  EXPECT_TRUE(genome::simplify(sf.program).has_evaluation_point());
  Genome at_z = sf;
  at_z.program.statements.back() = Program::parse({"u = sign(g)", "x = add(theta, s1)"}).statements.back();
  EXPECT_NE(at_z.hash(), sf.hash());  // only the evaluation point differs
  EXPECT_FALSE(genome::program_preset("adam").evaluates_elsewhere());
}
