#include "evoopt/genome/genome.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/common/rng.hpp"

namespace evoopt::genome {
using nlohmann::json;

namespace {
constexpr std::pair<Algorithm, const char*> kAlgorithmNames[] = {{Algorithm::Terms, "terms"},
                                                                 {Algorithm::Program, "program"},
                                                                 {Algorithm::AdEMAMix, "ademamix"},
                                                                 {Algorithm::ScheduleFreeAdamW, "schedule_free_adamw"},
                                                                 {Algorithm::Muon, "muon"}};
const Genome kDefaults;  // the values a field is reset to where the algorithm does not read it
}  // namespace

const char* algorithm_name(Algorithm a) {
  for (const auto& [algorithm, name] : kAlgorithmNames)
    if (algorithm == a) return name;
  return "?";
}

std::optional<Algorithm> algorithm_from_name(const std::string& name) {
  for (const auto& [algorithm, n] : kAlgorithmNames)
    if (name == n) return algorithm;
  return std::nullopt;
}

double Genome::lr() const { return std::pow(10.0, log10_lr); }
bool Genome::evaluates_elsewhere() const {
  return algorithm == Algorithm::ScheduleFreeAdamW || (is_program() && (program.has_evaluation_point() || program_rest.has_evaluation_point()));
}
double Genome::aux_lr() const { return std::pow(10.0, log10_aux_lr); }
double Genome::eps() const { return std::pow(10.0, log10_eps); }
double Genome::weight_decay() const { return log10_weight_decay ? std::pow(10.0, *log10_weight_decay) : 0.0; }
bool Genome::needs_m() const {
  return std::any_of(terms.begin(), terms.end(), [](const TermGene& t) { return term_info(t.term).needs_m; });
}
bool Genome::needs_v() const {
  return std::any_of(terms.begin(), terms.end(), [](const TermGene& t) { return term_info(t.term).needs_v; });
}
bool Genome::needs_lion_m() const {
  return std::any_of(terms.begin(), terms.end(), [](const TermGene& t) { return term_info(t.term).needs_lion_m; });
}
bool Genome::reads_bias_correction() const {
  return std::any_of(terms.begin(), terms.end(), [](const TermGene& t) { return term_info(t.term).reads_bias_correction; });
}

namespace {
void check_range(const char* field, double value, double lo, double hi) {
  if (!std::isfinite(value) || value < lo || value > hi)
    throw Error(fmt::format("genome field {} = {} is outside the allowed range [{}, {}]", field, value, lo, hi));
}

// A hand-made method's own rules: no terms, decoupled weight decay, its own fields' ranges.
void validate_algorithm(const Genome& g) {
  const std::string name = algorithm_name(g.algorithm);
  if (!g.terms.empty()) throw Error(fmt::format("genome algorithm {} has no terms, got {}", name, g.terms.size()));
  if (g.log10_weight_decay && !g.decoupled_weight_decay)
    throw Error("genome algorithm " + name + ": its weight decay is decoupled (decoupled_weight_decay = false is not supported)");
  if (g.algorithm == Algorithm::ScheduleFreeAdamW && g.cosine_decay)
    throw Error("genome algorithm schedule_free_adamw: cosine_decay is not allowed (the method replaces the schedule; warmup is)");
  check_range("beta3", g.beta3, Bounds::kBeta3Min, Bounds::kBeta3Max);
  check_range("alpha", g.alpha, Bounds::kAlphaMin, Bounds::kAlphaMax);
  check_range("log10_aux_lr", g.log10_aux_lr, Bounds::kLog10LrMin, Bounds::kLog10LrMax);
}

void validate_program(const Genome& g) {
  if (!g.terms.empty()) throw Error(fmt::format("genome algorithm program has no terms, got {}", g.terms.size()));
  g.program.validate();
  if (g.has_program_rest()) {
    try {
      g.program_rest.validate();
    } catch (const Error& e) {
      throw Error(std::string("program_rest: ") + e.what());
    }
    check_range("log10_aux_lr", g.log10_aux_lr, Bounds::kLog10LrMin, Bounds::kLog10LrMax);
  }
}

void validate_terms(const Genome& g, int max_terms) {
  const auto& terms = g.terms;
  if (terms.empty()) throw Error("genome field terms is empty (needs 1 to " + std::to_string(max_terms) + " terms)");
  if (static_cast<int>(terms.size()) > max_terms)
    throw Error(fmt::format("genome field terms has {} terms, more than the maximum {}", terms.size(), max_terms));
  for (std::size_t i = 0; i < terms.size(); ++i) {
    const int id = static_cast<int>(terms[i].term);
    if (id < 0 || id >= static_cast<int>(term_registry().size())) throw Error(fmt::format("genome field terms[{}] has unknown term id {}", i, id));
    check_range(fmt::format("weights[{}]", i).c_str(), terms[i].weight, Bounds::kWeightMin, Bounds::kWeightMax);
  }
  if (g.canonical().terms.empty()) throw Error("genome field weights sum to zero for every term (no update direction left)");
}
}  // namespace

void Genome::validate(int max_terms) const {
  if (max_terms < 1 || max_terms > Bounds::kHardMaxTerms)
    throw Error(fmt::format("maximum term count {} is outside [1, {}]", max_terms, Bounds::kHardMaxTerms));
  if (is_terms())
    validate_terms(*this, max_terms);
  else if (is_program())
    validate_program(*this);
  else
    validate_algorithm(*this);
  if (!is_program() && (!program.statements.empty() || has_program_rest()))
    throw Error(std::string("genome algorithm ") + algorithm_name(algorithm) + " has no program");
  check_range("log10_lr", log10_lr, Bounds::kLog10LrMin, Bounds::kLog10LrMax);
  check_range("beta1", beta1, Bounds::kBeta1Min, Bounds::kBeta1Max);
  check_range("beta2", beta2, Bounds::kBeta2Min, Bounds::kBeta2Max);
  check_range("log10_eps", log10_eps, Bounds::kLog10EpsMin, Bounds::kLog10EpsMax);
  if (log10_weight_decay) check_range("log10_weight_decay", *log10_weight_decay, Bounds::kLog10WdMin, Bounds::kLog10WdLimit);
  check_range("warmup_fraction", warmup_fraction, Bounds::kWarmupMin, Bounds::kWarmupMax);
  if (clip_norm) check_range("clip_norm", *clip_norm, Bounds::kClipMin, Bounds::kClipMax);
}

Genome Genome::canonical() const {
  Genome c = *this;
  if (algorithm != Algorithm::AdEMAMix) {
    c.beta3 = kDefaults.beta3;
    c.alpha = kDefaults.alpha;
  }
  if (algorithm != Algorithm::Muon && !has_program_rest()) c.log10_aux_lr = kDefaults.log10_aux_lr;
  if (is_program()) {  // simplified; the hyperparameters its statements do not name are reset
    c.program = simplify(program);
    if (has_program_rest()) c.program_rest = simplify(program_rest);
    const auto reads = [&c](Constant::Name n) { return c.program.reads(n) || c.program_rest.reads(n); };
    const bool nesterov = c.program.uses(ProgramOp::Nesterov) || c.program_rest.uses(ProgramOp::Nesterov);
    if (!nesterov && !reads(Constant::Name::Beta1)) c.beta1 = kDefaults.beta1;
    if (!reads(Constant::Name::Beta2)) c.beta2 = kDefaults.beta2;
    if (!reads(Constant::Name::Eps)) c.log10_eps = kDefaults.log10_eps;
    if (!nesterov) c.bias_correction = false;
    if (!c.has_schedule()) c.warmup_fraction = 0.0;
    if (!c.log10_weight_decay) c.decoupled_weight_decay = true;
    return c;
  }
  if (!is_terms()) {
    if (algorithm == Algorithm::Muon) {  // its AdamW part keeps the authors' β's and ε
      c.beta2 = kDefaults.beta2;
      c.log10_eps = kDefaults.log10_eps;
    }
    c.bias_correction = kDefaults.bias_correction;  // each corrects as published
    if (!c.has_schedule()) c.warmup_fraction = 0.0;
    if (!c.log10_weight_decay) c.decoupled_weight_decay = true;
    return c;
  }
  std::map<int, double> merged;
  for (const auto& t : terms) merged[static_cast<int>(t.term)] += t.weight;
  c.terms.clear();
  for (const auto& [id, w] : merged)
    if (w != 0.0) c.terms.push_back({static_cast<Term>(id), w});
  const bool m = c.needs_m(), v = c.needs_v(), lion = c.needs_lion_m();
  if (!m && !lion) c.beta1 = 0.9;    // β1: the EMA m, and LION's interpolation
  if (!v && !lion) c.beta2 = 0.999;  // β2: the EMA v, and LION's momentum
  if (!v) c.log10_eps = -8.0;
  if (!c.reads_bias_correction()) c.bias_correction = false;
  if (!c.has_schedule()) c.warmup_fraction = 0.0;
  if (!c.log10_weight_decay) c.decoupled_weight_decay = true;
  return c;
}

std::uint64_t Genome::hash() const {
  const Genome c = canonical();
  std::string bytes = "evoopt.genome.v1";
  auto put = [&bytes](const char* tag, double value) {
    std::uint64_t bits;
    value = value == 0.0 ? 0.0 : value;  // -0.0 and 0.0 hash alike
    std::memcpy(&bits, &value, sizeof(bits));
    bytes += tag;
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
  };
  for (const auto& t : c.terms) {
    bytes += "|";
    bytes += term_info(t.term).name;
    put("=", t.weight);
  }
  put("|lr", c.log10_lr);
  put("|b1", c.beta1);
  put("|b2", c.beta2);
  put("|eps", c.log10_eps);
  put("|wd", c.log10_weight_decay ? *c.log10_weight_decay : std::nan(""));
  bytes += c.log10_weight_decay ? "|wd+" : "|wd-";
  if (!c.decoupled_weight_decay) bytes += "|l2";
  bytes += c.bias_correction ? "|bc+" : "|bc-";
  put("|warm", c.warmup_fraction);
  bytes += c.cosine_decay ? "|cos+" : "|cos-";
  put("|clip", c.clip_norm ? *c.clip_norm : 0.0);
  bytes += c.clip_norm ? "|clip+" : "|clip-";
  if (!c.is_terms()) {  // only a hand-made algorithm hashes these: a term genome's hash does not depend on them
    bytes += "|algorithm=";
    bytes += algorithm_name(c.algorithm);
    put("|b3", c.beta3);
    put("|alpha", c.alpha);
    put("|auxlr", c.log10_aux_lr);
    if (c.is_program()) {
      // What the program computes (its probe), so that equivalent programs share the hash and
      // the run store trains them once; a program the probe cannot tell (not finite, or blind
      // to g) by its simplified text.
      const Probe p = probe(c);
      if (p.finite && p.reads_g) {
        bytes += "|function=";
        bytes += std::to_string(p.fingerprint);
      } else {
        for (const auto& line : c.program.lines()) bytes += "|" + line;
        if (c.has_program_rest()) bytes += "|rest";
        for (const auto& line : c.program_rest.lines()) bytes += "|" + line;
      }
    }
  }
  return mix64(fnv1a64(bytes));
}

std::string Genome::hash_hex() const { return fmt::format("{:016x}", hash()); }

namespace {
std::string strip_hats(std::string s) {
  const std::string hat = "\xCC\x82";  // U+0302 combining circumflex
  for (auto pos = s.find(hat); pos != std::string::npos; pos = s.find(hat)) s.erase(pos, hat.size());
  return s;
}
}  // namespace

namespace {
std::string algorithm_formula(const Genome& g) {
  std::string decay = g.log10_weight_decay ? " − η·λ·θ" : "";
  switch (g.algorithm) {
    case Algorithm::AdEMAMix:
      return "Δθ = −η·(m̂₁ + α·m₂)/(√v̂+ε)" + decay + "  (AdEMAMix)";
    case Algorithm::ScheduleFreeAdamW:
      return std::string("Δz = −η·(ĝ/(√v̂+ε)") + (g.log10_weight_decay ? " + λ·y" : "") +
             "), x ← (1−c)·x + c·z, y = (1−β1)·z + β1·x  (Schedule-Free AdamW; evaluated at x)";
    case Algorithm::Muon:
      return "Δθ = −η·√max(1, rows/cols)·NS₅(Nesterov momentum)" + decay + " on hidden matrices, AdamW (η_aux) on the rest  (Muon)";
    case Algorithm::Terms:
    case Algorithm::Program:
      break;
  }
  return "";
}

std::string algorithm_hyperparameters(const Genome& g, const std::string& schedule) {
  std::string out = fmt::format("η = {:.3g}{}", g.lr(), schedule.empty() ? "" : " (" + schedule + ")");
  if (g.algorithm == Algorithm::Muon) {
    out += fmt::format(", momentum = {:.4g}, η_aux = {:.3g}", g.beta1, g.aux_lr());
  } else {
    out += fmt::format(", β1 = {:.4g}, β2 = {:.5g}", g.beta1, g.beta2);
    if (g.algorithm == Algorithm::AdEMAMix) out += fmt::format(", β3 = {:.6g}, α = {:.3g}", g.beta3, g.alpha);
    out += fmt::format(", ε = {:.2g}", g.eps());
  }
  out += g.log10_weight_decay ? fmt::format(", λ = {:.2g} (decoupled)", g.weight_decay()) : ", λ = off";
  if (g.clip_norm) out += fmt::format(", clip ‖g‖ ≤ {:.3g}", *g.clip_norm);
  return out;
}
}  // namespace

std::string Genome::formula() const {
  const Genome c = canonical();
  if (c.is_program()) {
    const bool own_lr = c.program.reads(Constant::Name::Lr), own_decay = c.program.reads(Constant::Name::Wd);
    std::string out = own_lr ? "Δθ = −u" : "Δθ = −η·u";
    if (c.log10_weight_decay && !own_decay) out += c.decoupled_weight_decay ? " − η·λ·θ" : ",  g ← g + λ·θ";
    const auto body = [](const Program& p) {
      std::string b;
      for (const auto& line : p.lines()) b += (b.empty() ? "" : "; ") + line;
      return b;
    };
    if (!c.has_program_rest()) return out + ",  program: " + body(c.program);
    return out + ",  program (hidden matrices): " + body(c.program) + ",  program (the rest, η_aux): " + body(c.program_rest);
  }
  if (!c.is_terms()) return algorithm_formula(c);
  std::string sum;
  for (std::size_t i = 0; i < c.terms.size(); ++i) {
    const double w = c.terms[i].weight;
    std::string f(term_info(c.terms[i].term).formula);
    // NESTEROV with bias correction is NAdam's numerator (μ_t from β1, see term.hpp).
    if (c.terms[i].term == Term::Nesterov && c.bias_correction) f = "((1−μₜ)·ĝ+μₜ₊₁·m̂)";
    if (!c.bias_correction) f = strip_hats(f);
    if (i == 0) {
      sum += fmt::format("{}{:.2f}·{}", w < 0 ? "−" : "", std::fabs(w), f);
    } else {
      sum += fmt::format(" {} {:.2f}·{}", w < 0 ? "−" : "+", std::fabs(w), f);
    }
  }
  std::string out = "Δθ = −η·(" + sum + ")";
  if (c.log10_weight_decay) out += c.decoupled_weight_decay ? " − η·λ·θ" : ",  g ← g + λ·θ";
  return out;
}

std::string Genome::hyperparameters() const {
  std::string sched;
  if (warmup_fraction > 0) sched += fmt::format("warmup {:.0f}%", warmup_fraction * 100);
  if (cosine_decay) sched += std::string(sched.empty() ? "" : ", ") + "cosine";
  if (!has_rule()) return algorithm_hyperparameters(*this, sched);
  std::string out = fmt::format("η = {:.3g}{}", lr(), sched.empty() ? "" : " (" + sched + ")");
  const auto reads = [this](Constant::Name n) { return program.reads(n) || program_rest.reads(n); };
  const bool nesterov = is_program() && (program.uses(ProgramOp::Nesterov) || program_rest.uses(ProgramOp::Nesterov));
  if (has_program_rest()) out += fmt::format(", η_aux = {:.3g}", aux_lr());
  if (is_program() ? nesterov || reads(Constant::Name::Beta1) : needs_m() || needs_lion_m()) out += fmt::format(", β1 = {:.4g}", beta1);
  if (is_program() ? reads(Constant::Name::Beta2) : needs_v() || needs_lion_m()) out += fmt::format(", β2 = {:.5g}", beta2);
  if (is_program() ? reads(Constant::Name::Eps) : needs_v()) out += fmt::format(", ε = {:.2g}", eps());
  out += log10_weight_decay ? fmt::format(", λ = {:.2g} ({})", weight_decay(), decoupled_weight_decay ? "decoupled" : "L2") : ", λ = off";
  if (is_program() ? nesterov : reads_bias_correction()) out += bias_correction ? ", bias correction" : ", no bias correction";
  if (clip_norm) out += fmt::format(", clip ‖g‖ ≤ {:.3g}", *clip_norm);
  return out;
}

json Genome::to_json() const {
  json terms_json = json::array();
  for (const auto& t : terms) terms_json.push_back({{"term", std::string(term_info(t.term).name)}, {"weight", t.weight}});
  json j = {{"format", kGenomeFormat},
            {"version", is_program() ? kGenomeFormatVersion : kGenomeFormatVersionWithoutProgram},
            {"terms", terms_json},
            {"log10_lr", log10_lr},
            {"beta1", beta1},
            {"beta2", beta2},
            {"log10_eps", log10_eps},
            {"log10_weight_decay", log10_weight_decay ? json(*log10_weight_decay) : json(nullptr)},
            {"decoupled_weight_decay", decoupled_weight_decay},
            {"bias_correction", bias_correction},
            {"warmup_fraction", warmup_fraction},
            {"cosine_decay", cosine_decay},
            {"clip_norm", clip_norm ? json(*clip_norm) : json(nullptr)}};
  if (!is_terms()) {  // written only for a hand-made algorithm: a term genome's file has no algorithm fields
    j["algorithm"] = algorithm_name(algorithm);
    if (algorithm == Algorithm::AdEMAMix) {
      j["beta3"] = beta3;
      j["alpha"] = alpha;
    }
    if (algorithm == Algorithm::Muon) j["log10_aux_lr"] = log10_aux_lr;
    if (is_program()) j["program"] = program.lines();
    if (has_program_rest()) {
      j["program_rest"] = program_rest.lines();
      j["log10_aux_lr"] = log10_aux_lr;
    }
  }
  return j;
}

namespace {
double number(const json& j, const char* field) {
  if (!j.is_number()) throw Error(std::string("genome field ") + field + " must be a number, got " + j.dump());
  return j.get<double>();
}
bool boolean(const json& j, const char* field) {
  if (!j.is_boolean()) throw Error(std::string("genome field ") + field + " must be true or false, got " + j.dump());
  return j.get<bool>();
}
const json* find_any(const json& j, std::initializer_list<const char*> names, const char** which) {
  for (const char* n : names)
    if (j.contains(n)) {
      *which = n;
      return &j.at(n);
    }
  return nullptr;
}
double log10_positive(double v, const char* field) {
  if (!(v > 0) || !std::isfinite(v)) throw Error(fmt::format("genome field {} = {} must be a positive finite number", field, v));
  return std::log10(v);
}
Term parse_term(const json& j) {
  if (!j.is_string()) throw Error("genome term must be a name string, got " + j.dump());
  auto t = term_from_name(j.get<std::string>());
  if (!t) {
    std::string known;
    for (const auto& info : term_registry()) known += (known.empty() ? "" : ", ") + std::string(info.name);
    throw Error("unknown genome term '" + j.get<std::string>() + "' (known: " + known + ")");
  }
  return *t;
}
// Rejects keys this reader does not understand (a typo such as "wieght" is an error, never
// silently a default) and two spellings of one field (one would be silently ignored).
void check_keys(const json& j) {
  static const std::set<std::string> known = {"format",
                                              "version",
                                              "terms",
                                              "weights",
                                              "log10_lr",
                                              "lr",
                                              "learning_rate",
                                              "beta1",
                                              "beta2",
                                              "log10_eps",
                                              "eps",
                                              "epsilon",
                                              "log10_weight_decay",
                                              "weight_decay",
                                              "decoupled_weight_decay",
                                              "bias_correction",
                                              "use_bias_correction",
                                              "schedule",
                                              "lr_schedule",
                                              "warmup_fraction",
                                              "use_warmup",
                                              "warmup",
                                              "cosine_decay",
                                              "use_cosine_decay",
                                              "cosine",
                                              "clip_norm",
                                              "grad_clip",
                                              "algorithm",
                                              "beta3",
                                              "alpha",
                                              "log10_aux_lr",
                                              "aux_lr",
                                              "program",
                                              "program_rest"};
  for (const auto& [key, value] : j.items())
    if (!known.count(key)) throw Error("genome JSON has an unknown key '" + key + "'");
  static const std::vector<std::vector<const char*>> same_field = {{"log10_lr", "lr", "learning_rate"},
                                                                   {"log10_eps", "eps", "epsilon"},
                                                                   {"log10_weight_decay", "weight_decay"},
                                                                   {"bias_correction", "use_bias_correction"},
                                                                   {"schedule", "lr_schedule"},
                                                                   {"use_warmup", "warmup"},
                                                                   {"cosine_decay", "use_cosine_decay", "cosine"},
                                                                   {"clip_norm", "grad_clip"},
                                                                   {"log10_aux_lr", "aux_lr"}};
  for (const auto& names : same_field) {
    std::vector<std::string> given;
    for (const char* n : names)
      if (j.contains(n)) given.emplace_back(n);
    if (given.size() > 1) throw Error("genome JSON gives both '" + given[0] + "' and '" + given[1] + "', two spellings of one field; keep one");
  }
}

// The file's format version, after checking its format name.
int format_version(const json& j) {
  if (j.contains("format") && j.at("format") != kGenomeFormat)
    throw Error("genome JSON has format " + j.at("format").dump() + ", expected \"" + kGenomeFormat + "\"");
  int version = kGenomeFormatVersion;  // files from other tools carry no version: read as the current format
  if (j.contains("version")) {
    const json& v = j.at("version");
    if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > kGenomeFormatVersion)
      throw Error("genome JSON version " + v.dump() + " is not one this evoopt reads (1 to " + std::to_string(kGenomeFormatVersion) + ")");
    version = v.get<int>();
  }
  return version;
}

// The terms with their weights: names plus a parallel "weights" array, or entries that are
// each a name (weight 1) or {"term": NAME, "weight": W}.
std::vector<TermGene> read_terms(const json& j) {
  std::vector<TermGene> genes;
  if (!j.contains("terms") && j.contains("algorithm")) return genes;  // a hand-made method
  if (!j.contains("terms") || !j.at("terms").is_array()) throw Error("genome JSON needs a 'terms' array");
  const json& terms = j.at("terms");
  if (terms.size() > static_cast<std::size_t>(limits::kGenomeTerms.max))
    throw Error(limits::exceeds("genome field terms: count", std::to_string(terms.size()), limits::kGenomeTerms));
  if (j.contains("weights")) {
    const json& w = j.at("weights");
    if (!w.is_array() || w.size() != terms.size())
      throw Error(fmt::format("genome field weights must be an array as long as terms ({} terms)", terms.size()));
    for (std::size_t i = 0; i < terms.size(); ++i) genes.push_back({parse_term(terms[i]), number(w[i], "weights[]")});
  } else {
    for (const auto& t : terms) {
      if (t.is_string()) {
        genes.push_back({parse_term(t), 1.0});
      } else if (t.is_object() && t.contains("term")) {
        for (const auto& [key, value] : t.items())
          if (key != "term" && key != "weight") throw Error("genome term entry has an unknown key '" + key + "' (allowed: term, weight)");
        genes.push_back({parse_term(t.at("term")), t.contains("weight") ? number(t.at("weight"), "weight") : 1.0});
      } else {
        throw Error("genome term entry must be a name or {\"term\": NAME, \"weight\": W}, got " + t.dump());
      }
    }
  }
  return genes;
}

// Learning rate, betas, epsilon and weight decay, each given directly or as its log10.
void read_rates(const json& j, Genome& g) {
  const char* which = nullptr;
  if (const json* v = find_any(j, {"log10_lr"}, &which))
    g.log10_lr = number(*v, which);
  else if (const json* v = find_any(j, {"lr", "learning_rate"}, &which))
    g.log10_lr = log10_positive(number(*v, which), which);
  if (const json* v = find_any(j, {"beta1"}, &which)) g.beta1 = number(*v, which);
  if (const json* v = find_any(j, {"beta2"}, &which)) g.beta2 = number(*v, which);
  if (const json* v = find_any(j, {"log10_eps"}, &which))
    g.log10_eps = number(*v, which);
  else if (const json* v = find_any(j, {"eps", "epsilon"}, &which))
    g.log10_eps = log10_positive(number(*v, which), which);
  if (const json* v = find_any(j, {"log10_weight_decay"}, &which)) {
    g.log10_weight_decay = v->is_null() ? std::nullopt : std::optional<double>(number(*v, which));
  } else if (const json* v = find_any(j, {"weight_decay"}, &which)) {
    const double wd = v->is_null() ? 0.0 : number(*v, which);
    if (wd < 0) throw Error(fmt::format("genome field weight_decay = {} must be >= 0", wd));
    if (wd > 0) g.log10_weight_decay = std::log10(wd);
  }
}

// Weight-decay kind, bias correction, learning-rate schedule and gradient clipping.
void read_switches(const json& j, Genome& g) {
  const char* which = nullptr;
  if (const json* v = find_any(j, {"decoupled_weight_decay"}, &which)) g.decoupled_weight_decay = boolean(*v, which);
  if (const json* v = find_any(j, {"bias_correction", "use_bias_correction"}, &which)) g.bias_correction = boolean(*v, which);
  // A schedule given by name: "constant", "cosine", "warmup", "warmup_cosine"
  // (warmup lasts 5% of the run unless a fraction is given).
  if (const json* v = find_any(j, {"schedule", "lr_schedule"}, &which)) {
    if (!v->is_string()) throw Error(std::string("genome field ") + which + " must be a string, got " + v->dump());
    const std::string s = v->get<std::string>();
    if (s != "constant" && s != "none" && s != "cosine" && s != "warmup" && s != "warmup_cosine")
      throw Error(std::string("genome field ") + which + " = \"" + s + "\" is not one of constant, cosine, warmup, warmup_cosine");
    g.cosine_decay = s.find("cosine") != std::string::npos;
    if (s.find("warmup") != std::string::npos) g.warmup_fraction = 0.05;
  }
  if (const json* v = find_any(j, {"warmup_fraction"}, &which)) g.warmup_fraction = number(*v, which);
  if (const json* v = find_any(j, {"use_warmup", "warmup"}, &which)) {
    if (v->is_boolean())
      g.warmup_fraction = v->get<bool>() ? (g.warmup_fraction > 0 ? g.warmup_fraction : 0.05) : 0.0;
    else
      g.warmup_fraction = number(*v, which);
  }
  if (const json* v = find_any(j, {"cosine_decay", "use_cosine_decay", "cosine"}, &which)) g.cosine_decay = boolean(*v, which);
  if (const json* v = find_any(j, {"clip_norm", "grad_clip"}, &which))
    g.clip_norm = v->is_null() ? std::nullopt : std::optional<double>(number(*v, which));
}

// A hand-made method and its own hyperparameters.
void read_algorithm(const json& j, Genome& g) {
  const char* which = nullptr;
  if (const json* v = find_any(j, {"algorithm"}, &which)) {
    if (!v->is_string()) throw Error("genome field algorithm must be a string, got " + v->dump());
    const auto m = algorithm_from_name(v->get<std::string>());
    if (!m)
      throw Error("genome field algorithm = \"" + v->get<std::string>() + "\" is not one of terms, program, ademamix, schedule_free_adamw, muon");
    g.algorithm = *m;
  }
  for (const char* field : {"program", "program_rest"}) {
    const json* v = find_any(j, {field}, &which);
    if (v == nullptr) continue;
    if (!g.is_program()) throw Error(fmt::format("genome field {} needs \"algorithm\": \"program\"", field));
    if (!v->is_array()) throw Error(fmt::format("genome field {} must be an array of statements (strings), got {}", field, v->dump()));
    if (v->size() > Program::kMaxStatements)
      throw Error(fmt::format("genome field {} has {} statements, more than the maximum {}", field, v->size(), Program::kMaxStatements));
    std::vector<std::string> lines;
    for (const auto& s : *v) {
      if (!s.is_string()) throw Error(fmt::format("genome field {}: a statement must be a string, got {}", field, s.dump()));
      lines.push_back(s.get<std::string>());
    }
    try {
      (std::string(field) == "program" ? g.program : g.program_rest) = Program::parse(lines);
    } catch (const Error& e) {
      throw Error(std::string(field) == "program" ? e.what() : std::string("program_rest: ") + e.what());
    }
  }
  if (g.is_program() && g.program.statements.empty()) throw Error("genome algorithm program needs a 'program' array of statements");
  if (const json* v = find_any(j, {"beta3"}, &which)) g.beta3 = number(*v, which);
  if (const json* v = find_any(j, {"alpha"}, &which)) g.alpha = number(*v, which);
  if (const json* v = find_any(j, {"log10_aux_lr"}, &which))
    g.log10_aux_lr = number(*v, which);
  else if (const json* v = find_any(j, {"aux_lr"}, &which))
    g.log10_aux_lr = log10_positive(number(*v, which), which);
}
}  // namespace

Genome Genome::from_json(const json& j) {
  if (!j.is_object()) throw Error("genome JSON must be an object");
  check_keys(j);
  const int version = format_version(j);
  Genome g;
  g.terms = read_terms(j);
  read_rates(j, g);
  read_switches(j, g);
  read_algorithm(j, g);
  if (g.is_program() && version < 3) throw Error(fmt::format("genome JSON version {} has no programs (they are version 3)", version));
  if (version == 1) {
    // Version 1 meanings (see kGenomeFormatVersion): LION read the genome's m, and
    // NESTEROV with bias correction was β1·m̂ + (1−β1)·g.
    for (auto& t : g.terms) {
      if (t.term == Term::Lion) t.term = Term::LionV1;
      if (t.term == Term::Nesterov && g.bias_correction) t.term = Term::NesterovV1;
    }
  }
  g.validate(Bounds::kHardMaxTerms);
  return g;
}

bool Genome::operator==(const Genome& o) const {
  return algorithm == o.algorithm && program == o.program && program_rest == o.program_rest && beta3 == o.beta3 && alpha == o.alpha &&
         log10_aux_lr == o.log10_aux_lr && terms == o.terms && log10_lr == o.log10_lr && beta1 == o.beta1 && beta2 == o.beta2 &&
         log10_eps == o.log10_eps && log10_weight_decay == o.log10_weight_decay && decoupled_weight_decay == o.decoupled_weight_decay &&
         bias_correction == o.bias_correction && warmup_fraction == o.warmup_fraction && cosine_decay == o.cosine_decay && clip_norm == o.clip_norm;
}

std::vector<std::string> preset_names() {
  return {"sgd", "adam", "adamw", "rmsprop", "signum", "lion", "nadamw", "ademamix", "schedule_free_adamw", "muon"};
}

Genome preset(const std::string& name) {
  Genome g;
  if (name == "sgd") {
    // EMA momentum: equals torch SGD(momentum=0.9, lr=η·(1−β1)) = SGD(lr=0.01).
    g.terms = {{Term::Momentum, 1.0}};
    g.log10_lr = -1.0;
    g.beta1 = 0.9;
    g.bias_correction = false;
  } else if (name == "adam") {
    g.terms = {{Term::AdamTerm, 1.0}};  // torch::optim::Adam defaults
  } else if (name == "adamw") {
    g.terms = {{Term::AdamTerm, 1.0}};
    g.log10_weight_decay = -2.0;  // torch::optim::AdamW default weight_decay 1e-2
  } else if (name == "rmsprop") {
    g.terms = {{Term::RmsNorm, 1.0}};
    g.beta2 = 0.99;  // torch RMSprop alpha
    g.bias_correction = false;
  } else if (name == "signum") {
    g.terms = {{Term::SignMomentum, 1.0}};
    g.log10_lr = -4.0;
    g.bias_correction = false;
  } else if (name == "lion" || name == "lion-like") {
    // Lion (Chen et al. 2023) with its default betas (0.9, 0.99) and decoupled weight
    // decay θ ← θ(1 − ηλ); "lion-like" is the name format v1 gave this preset.
    g.terms = {{Term::Lion, 1.0}};
    g.log10_lr = std::log10(3e-4);
    g.beta1 = 0.9;
    g.beta2 = 0.99;
    g.bias_correction = false;
    g.log10_weight_decay = -2.0;
  } else if (name == "nadamw") {
    // NAdamW, MLCommons AlgoPerf's baseline (the NADAMW term), with AdamW's defaults.
    g.terms = {{Term::NAdamW, 1.0}};
    g.log10_weight_decay = -2.0;
  } else if (name == "ademamix") {
    // The authors' defaults: β = (0.9, 0.999, 0.9999), α = 5, AdamW's weight decay.
    g.algorithm = Algorithm::AdEMAMix;
    g.log10_weight_decay = -2.0;
  } else if (name == "schedule_free_adamw") {
    // The authors' defaults (lr 0.0025, β = (0.9, 0.999)), with 5% warmup as they advise.
    g.algorithm = Algorithm::ScheduleFreeAdamW;
    g.log10_lr = std::log10(0.0025);
    g.warmup_fraction = 0.05;
  } else if (name == "muon") {
    // The authors' defaults: lr 0.02, momentum 0.95 (Nesterov), its AdamW part at 3e-4.
    g.algorithm = Algorithm::Muon;
    g.log10_lr = std::log10(0.02);
    g.beta1 = 0.95;
  } else {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown genome preset '" + name + "' (presets: " + known + ")");
  }
  return g;
}

Genome load_genome(const std::string& preset_or_file) {
  for (const auto& n : preset_names())
    if (n == preset_or_file) return preset(n);
  if (preset_or_file == "lion-like") return preset(preset_or_file);
  if (!std::filesystem::exists(preset_or_file)) {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("'" + preset_or_file + "' is neither a genome preset (" + known + ") nor an existing file");
  }
  json j = parse_json(read_text_file(preset_or_file, limits::kGenomeFileBytes), preset_or_file);
  // A run's best_genome.json wraps the genome in {"genome": ...}.
  if (j.is_object() && j.contains("genome") && j.at("genome").is_object()) j = j.at("genome");
  try {
    return Genome::from_json(j);
  } catch (const Error& e) {
    throw Error(preset_or_file + ": " + e.what());
  }
}

void save_genome(const Genome& g, const std::string& path) { write_file_atomic(path, g.to_json().dump(2) + "\n"); }

double genome_distance(const Genome& a_in, const Genome& b_in) {
  const Genome a = a_in.canonical(), b = b_in.canonical();
  if (a.algorithm != b.algorithm) return 1.0;
  std::map<Term, double> wa, wb;
  for (const auto& t : a.terms) wa[t.term] += t.weight;
  for (const auto& t : b.terms) wb[t.term] += t.weight;
  // Over the union of terms in registry order, so that d(a, b) == d(b, a) bit for bit.
  std::map<Term, std::pair<double, double>> both;
  for (const auto& [term, w] : wa) both[term].first = w;
  for (const auto& [term, w] : wb) both[term].second = w;
  double diff = 0, norm = 0;
  for (const auto& [term, w] : both) {
    diff += std::abs(w.first - w.second);
    norm += std::abs(w.first) + std::abs(w.second);
  }
  const double term_part = a.is_program() ? (a.program == b.program && a.program_rest == b.program_rest ? 0.0 : 1.0) : norm > 0 ? diff / norm : 0.0;

  // Each hyperparameter difference scaled to [0, 1] by its allowed range.
  const auto scaled = [](double x, double y, double lo, double hi) { return std::min(1.0, std::abs(x - y) / (hi - lo)); };
  const auto one_minus = [](double beta, double floor_log) { return std::max(floor_log, std::log10(1.0 - beta)); };
  const auto optional_gene = [&scaled](const std::optional<double>& x, const std::optional<double>& y, double lo, double hi) {
    if (x.has_value() != y.has_value()) return 1.0;
    return x ? scaled(*x, *y, lo, hi) : 0.0;
  };
  const double genes[] = {
      scaled(a.log10_lr, b.log10_lr, Bounds::kLog10LrMin, Bounds::kLog10LrMax),
      scaled(one_minus(a.beta1, -4), one_minus(b.beta1, -4), -4, 0),
      scaled(one_minus(a.beta2, -5), one_minus(b.beta2, -5), -5, 0),
      scaled(a.log10_eps, b.log10_eps, Bounds::kLog10EpsMin, Bounds::kLog10EpsMax),
      optional_gene(a.log10_weight_decay, b.log10_weight_decay, Bounds::kLog10WdMin, Bounds::kLog10WdMax),
      a.log10_weight_decay && b.log10_weight_decay && a.decoupled_weight_decay != b.decoupled_weight_decay ? 1.0 : 0.0,
      a.bias_correction != b.bias_correction ? 1.0 : 0.0,
      scaled(a.warmup_fraction, b.warmup_fraction, Bounds::kWarmupMin, Bounds::kWarmupMax),
      a.cosine_decay != b.cosine_decay ? 1.0 : 0.0,
      optional_gene(a.clip_norm ? std::optional<double>(std::log10(*a.clip_norm)) : std::nullopt,
                    b.clip_norm ? std::optional<double>(std::log10(*b.clip_norm)) : std::nullopt, std::log10(Bounds::kClipMin),
                    std::log10(Bounds::kClipMax)),
  };
  double gene_sum = 0;
  for (double g : genes) gene_sum += g;
  const double gene_part = gene_sum / static_cast<double>(std::size(genes));
  return 0.5 * term_part + 0.5 * gene_part;
}

}  // namespace evoopt::genome
