#include "evoopt/export/export.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <set>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/common/run_dir.hpp"
#include "evoopt/genome/term.hpp"

namespace evoopt::exports {
namespace fs = std::filesystem;
using genome::Genome;
using genome::Term;
using nlohmann::json;

Format format_from_name(const std::string& name) {
  if (name == "pytorch") return Format::PyTorch;
  if (name == "cpp") return Format::Cpp;
  if (name == "latex") return Format::Latex;
  if (name == "markdown") return Format::Markdown;
  throw Error("unknown export format '" + name + "' (allowed: pytorch, cpp, latex, markdown)");
}

const char* format_name(Format f) {
  switch (f) {
    case Format::PyTorch:
      return "pytorch";
    case Format::Cpp:
      return "cpp";
    case Format::Latex:
      return "latex";
    case Format::Markdown:
      return "markdown";
  }
  return "?";
}

namespace {

// Exact decimal text of a double (round-trips), for code.
std::string num(double v) { return fmt::format("{:.17g}", v); }
// Six significant digits, for people.
std::string brief(double v) { return fmt::format("{:.6g}", v); }

using genome::Constant;
using genome::rule::Var;
// The optimizer-state tensors, in the order exports allocate them.
constexpr Var kStateVars[] = {Var::M, Var::V, Var::C, Var::S0, Var::S1, Var::S2};

// A program's operations beyond the terms' own, as functions of the exported module (the
// same arithmetic as genome/rule.cpp's op table).
constexpr const char* kPythonProgramHelpers = R"PY(def _safe_div(a, b):
    """a / b, 0 where |b| < 1e-12."""
    q = a / b
    return torch.where(b.abs() < 1e-12, torch.zeros_like(q), q)


def _rms_normalize(a):
    return a / (a.square().mean().sqrt() + 1e-8)


def _l2_normalize(a):
    return a / (a.norm() + 1e-8)


def _orthogonalize(x, steps=5):
    """Muon's Newton-Schulz iterations on x as a matrix (conv kernels as (out, in*k*k)); 1-D: a copy."""
    if x.dim() < 2:
        return x.clone()
    a, b, c = 3.4445, -4.7750, 2.0315
    X = x.reshape(x.size(0), -1)
    tall = X.size(0) > X.size(1)
    if tall:
        X = X.t()
    X = X / (X.norm() + 1e-7)
    for _ in range(steps):
        A = X.mm(X.t())
        B = b * A + c * A.mm(A)
        X = a * X + B.mm(X)
    if tall:
        X = X.t()
    return X.reshape(x.shape)


def _average_weight(lr_t, state):
    """Schedule-Free's averaging weight c_t: (largest lr_t so far)^2 over the sum of those squares."""
    state["lr_max"] = max(state["lr_max"], lr_t)
    weight = state["lr_max"] ** 2
    state["weight_sum"] += weight
    return weight / state["weight_sum"] if state["weight_sum"] > 0 else 0.0


def _aspect_scale(x):
    """sqrt(max(1, rows/cols)) * x, x viewed as _orthogonalize views it (Muon's scale); 1-D: a copy."""
    if x.dim() < 2:
        return x.clone()
    rows = x.size(0)
    return x * math.sqrt(max(1.0, rows / (x.numel() / rows)))


)PY";

constexpr const char* kCppProgramHelpers = R"HDR(  static torch::Tensor safe_div(const torch::Tensor& a, const torch::Tensor& b) {
    const torch::Tensor q = a / b;
    return torch::where(b.abs() < 1e-12, torch::zeros_like(q), q);
  }
  static torch::Tensor rms_normalize(const torch::Tensor& a) { return a / (a.square().mean().sqrt() + 1e-8); }
  static torch::Tensor l2_normalize(const torch::Tensor& a) { return a / (a.norm() + 1e-8); }
  static torch::Tensor orthogonalize(const torch::Tensor& x, int steps = 5) {
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
  static double average_weight(double lr_t, double& lr_max, double& weight_sum) {
    lr_max = std::max(lr_max, lr_t);
    const double w = lr_max * lr_max;
    weight_sum += w;
    return weight_sum > 0 ? w / weight_sum : 0.0;
  }
  static torch::Tensor aspect_scale(const torch::Tensor& x) {
    if (x.dim() < 2) return x.clone();
    const double rows = static_cast<double>(x.size(0)), cols = static_cast<double>(x.numel()) / rows;
    return x * std::sqrt(std::max(1.0, rows / cols));
  }
)HDR";

// ---------------------------------------------------------------- text from outside

// Characters that end or rearrange a line as it is shown (line and paragraph separators,
// bidirectional overrides, the byte-order mark): escaped wherever text from outside goes.
bool invisible_control(std::uint32_t cp) {
  return cp == 0x061C || cp == 0x200E || cp == 0x200F || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

// `s` as one printable line of valid UTF-8: control characters (newlines included) as
// \n, \r, \t or \xNN, invalid UTF-8 bytes as \xNN, the characters above as \uNNNN. With
// `quote`, also \ as \\ and " as \" inside double quotes (a C-style string, so that a
// reader can tell data from the text around it, and the quoted text never ends with \).
std::string escape_text(const std::string& s, bool quote) {
  std::string out;
  if (quote) out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    std::uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1Fu) : len == 3 ? (b & 0x0Fu) : (b & 0x07u);
    bool valid = len > 0 && i + len <= s.size();
    for (std::size_t k = 1; valid && k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      valid = (c & 0xC0) == 0x80;
      cp = (cp << 6) | (c & 0x3Fu);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    if (valid &&
        ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF))
      valid = false;
    if (!valid) {
      out += fmt::format("\\x{:02x}", b);
      ++i;
      continue;
    }
    if (cp == '\n')
      out += "\\n";
    else if (cp == '\r')
      out += "\\r";
    else if (cp == '\t')
      out += "\\t";
    else if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0))
      out += fmt::format("\\x{:02x}", cp);
    else if (invisible_control(cp))
      out += fmt::format("\\u{:04x}", cp);
    else if (quote && (cp == '\\' || cp == '"'))
      out += std::string("\\") + static_cast<char>(cp);
    else
      out.append(s, i, len);
    i += len;
  }
  if (quote) out += '"';
  return out;
}

std::string one_line(const std::string& s) { return escape_text(s, false); }
std::string quoted(const std::string& s) { return escape_text(s, true); }

// A line of text inside the class's """docstring""" (not raw): backslashes doubled (no
// escape sequence can form) and a " escaped where the next character is a " too or the
// line ends, so no """ can close the docstring.
std::string python_docstring_text(const std::string& s) {
  const std::string line = one_line(s);
  std::string out;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\\')
      out += "\\\\";
    else if (line[i] == '"' && (i + 1 == line.size() || line[i + 1] == '"'))
      out += "\\\"";
    else
      out += line[i];
  }
  return out;
}

// The text of a // comment: one line, and not ending in \ (a backslash before the newline
// would splice the next line into the comment).
std::string cpp_comment_text(const std::string& s) {
  std::string line = one_line(s);
  if (!line.empty() && line.back() == '\\') line.replace(line.size() - 1, 1, "\\x5c");
  return line;
}

// Markdown text: HTML's special characters as entities (no raw HTML gets through) and
// Markdown's inline punctuation backslash-escaped (no emphasis, links, code, tables or
// math start inside it).
std::string markdown_text(const std::string& s) {
  std::string out;
  for (char c : one_line(s)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\\':
      case '`':
      case '*':
      case '_':
      case '[':
      case ']':
      case '|':
      case '$':
      case '~':
      case '#':
        out += '\\';
        out += c;
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Each of `lines` (text from outside) turned into one line of the target's context, after `prefix`.
template <typename Escape>
std::string lines_in(const std::vector<std::string>& lines, const std::string& prefix, Escape escape) {
  std::string s;
  for (const auto& l : lines) s += prefix + escape(l) + "\n";
  return s;
}

// ---------------------------------------------------------------- formulas

std::string hyper_table_markdown(const Genome& g) {
  std::string t = "| hyperparameter | value |\n|---|---|\n";
  t += fmt::format("| learning rate η | {} |\n", brief(g.lr()));
  if (g.needs_m() || g.needs_lion_m()) t += fmt::format("| β1 | {} |\n", brief(g.beta1));
  if (g.needs_v() || g.needs_lion_m()) t += fmt::format("| β2 | {} |\n", brief(g.beta2));
  if (g.needs_v()) t += fmt::format("| ε | {} |\n", brief(g.eps()));
  t += g.log10_weight_decay ? fmt::format("| weight decay λ | {} ({}) |\n", brief(g.weight_decay()), g.decoupled_weight_decay ? "decoupled" : "L2")
                            : "| weight decay λ | off |\n";
  if (g.reads_bias_correction()) t += fmt::format("| bias correction | {} |\n", g.bias_correction ? "on" : "off");
  t += fmt::format("| warmup | {}% of the steps |\n| cosine decay | {} |\n", brief(g.warmup_fraction * 100), g.cosine_decay ? "on" : "off");
  t += g.clip_norm ? fmt::format("| gradient clipping | global norm ≤ {} |\n", brief(*g.clip_norm)) : "| gradient clipping | off |\n";
  return t;
}

// The provenance as lines of text (each escaped for its context by the caller).
std::vector<std::string> provenance_lines(const Provenance& p) {
  std::vector<std::string> lines;
  if (!p.source.empty()) lines.push_back("Source: " + p.source);
  if (p.validation_fitness) lines.push_back(fmt::format("Validation fitness (mean accuracy over the search tasks): {:.4f}", *p.validation_fitness));
  if (!p.test_result.empty()) lines.push_back("Test: " + p.test_result);
  return lines;
}

// The genome's update rule and hyperparameters, then its provenance: the documentation lines.
std::vector<std::string> doc_lines(const Genome& g, const Provenance& p, const std::string& indent) {
  std::vector<std::string> lines = {"Update rule (evoopt genome " + g.hash_hex() + "):", indent + g.formula(), indent + g.hyperparameters()};
  for (auto& l : provenance_lines(p)) lines.push_back(std::move(l));
  return lines;
}

// ---------------------------------------------------------------- PyTorch

// The per-parameter body of step() for a one-program (or term) genome, at `indent`: state, t
// and η_t (from the group's `lr_key`) around the genome's update rule.
std::string python_part_step(const Genome& g, const std::string& indent, const char* lr_key) {
  const genome::rule::Rule rule = genome::rule::update_rule(g);
  const genome::rule::Rule at_x = g.is_program() ? genome::evaluation_rule(g) : genome::rule::Rule{};
  std::string s;
  auto line = [&](const std::string& l) { s += indent + l + "\n"; };
  line("state = self.state[p]");
  line("if len(state) == 0:");
  line("    state[\"step\"] = 0");
  for (Var v : kStateVars)
    if (rule.reads(v) || at_x.reads(v))
      line(fmt::format("    state[\"{}\"] = torch.zeros_like(p, memory_format=torch.preserve_format)", genome::rule::var_info(v).state_key));
  if (rule.reads(Var::Ng)) line("    state[\"mu_product\"] = 1.0");
  if (rule.reads(Var::AvgW)) line("    state[\"lr_max\"], state[\"weight_sum\"] = 0.0, 0.0");
  line("state[\"step\"] += 1");
  line("t = state[\"step\"]");
  line(fmt::format("lr_t = group[\"{}\"] * _schedule_factor(group[\"warmup_fraction\"], group[\"cosine_decay\"], t - 1, group[\"total_steps\"])",
                   lr_key));
  for (Var v : kStateVars)
    if (rule.reads(v)) line(fmt::format("{} = state[\"{}\"]", genome::rule::var_info(v).python, genome::rule::var_info(v).state_key));
  for (const auto& l : genome::rule::python_lines(rule)) line(l);
  return s;
}

// The parts of a genome as exports write them: one (itself), or the hidden matrices' and the
// rest's programs.
bool two_parts(const Genome& g) { return g.is_program() && g.has_program_rest(); }

// The per-parameter body of step(); with two programs, the group's "rest" picks the part.
std::string python_step(const Genome& g) {
  if (!two_parts(g)) return python_part_step(g, "                ", "lr");
  return "                if group[\"rest\"]:\n" + python_part_step(genome::program_part(g, genome::Part::Rest), "                    ", "aux_lr") +
         "                else:\n" + python_part_step(genome::program_part(g, genome::Part::Hidden), "                    ", "lr");
}

// A part's evaluation point for one parameter p (its state non-empty), at `indent`.
std::string python_part_x(const Genome& part, const std::string& indent, const char* lr_key) {
  const genome::rule::Rule at_x = genome::evaluation_rule(part);
  if (at_x.stmts.empty()) return indent + "continue\n";
  std::string s;
  auto line = [&](const std::string& l) { s += indent + l + "\n"; };
  line("t = state[\"step\"]");
  line(fmt::format("lr_t = group[\"{}\"] * _schedule_factor(group[\"warmup_fraction\"], group[\"cosine_decay\"], t - 1, group[\"total_steps\"])",
                   lr_key));
  for (Var v : kStateVars)
    if (at_x.reads(v)) line(fmt::format("{} = state[\"{}\"]", genome::rule::var_info(v).python, genome::rule::var_info(v).state_key));
  for (const auto& l : genome::rule::python_lines(at_x)) line(l);
  line("state[\"train_weights\"] = p.clone()");
  line("p.copy_(x)");
  return s;
}

// eval() and train() of a genome evaluated elsewhere (a program's evaluation point, as
// Schedule-Free's x): empty otherwise.
std::string python_eval_methods(const Genome& g) {
  if (!g.is_program() || !g.evaluates_elsewhere()) return "";
  const std::string at_x =
      two_parts(g)
          ? "                if group[\"rest\"]:\n" + python_part_x(genome::program_part(g, genome::Part::Rest), "                    ", "aux_lr") +
                "                else:\n" + python_part_x(genome::program_part(g, genome::Part::Hidden), "                    ", "lr")
          : python_part_x(g, "                ", "lr");
  return R"PY(
    @torch.no_grad()
    def eval(self):
        """Moves every parameter that has stepped to the weights this optimizer is evaluated at (x); train() moves them back."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if len(state) == 0 or "train_weights" in state:
                    continue
)PY" + at_x +
         R"PY(
    @torch.no_grad()
    def train(self):
        """Puts back the training weights eval() moved."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if "train_weights" in state:
                    p.copy_(state.pop("train_weights"))
)PY";
}

// The module's docstring, imports and the functions the class calls: the schedule and NAdam's
// Nesterov coefficients.
std::string python_module_head(const std::string& cls, std::int64_t total_steps) {
  return fmt::format(R"PY(# Generated by `evoopt export --format pytorch`. Depends only on torch.
"""{cls}: an optimizer discovered by evoopt, as a torch.optim.Optimizer.

Usage:
    from {module} import {cls}
    opt = {cls}(model.parameters(), total_steps={total})   # total_steps: the schedule's horizon
    ... loss.backward(); opt.step(); opt.zero_grad() ...
"""
import math

import torch


def _schedule_factor(warmup_fraction, cosine_decay, step, total_steps):
    """Learning-rate factor at 0-based `step`: linear warmup, then optional cosine decay to 0."""
    if total_steps <= 0:
        return 1.0
    warmup = int(math.floor(warmup_fraction * total_steps + 0.5))
    if step < warmup:
        return (step + 1) / warmup
    if not cosine_decay:
        return 1.0
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _nesterov_coefficients(beta1, bias_correction, t, state):
    """NESTEROV = a*g + b*m: (1-beta1, beta1), or NAdam's with bias correction (momentum decay 0.004)."""
    if not bias_correction:
        return 1.0 - beta1, beta1
    mu = lambda step: beta1 * (1.0 - 0.5 * 0.96 ** (step * {decay}))
    mu_t, mu_next = mu(float(t)), mu(float(t + 1))
    state["mu_product"] *= mu_t
    prod = state["mu_product"]
    return (1.0 - mu_t) / (1.0 - prod), mu_next / (1.0 - prod * mu_next)


)PY",
                     fmt::arg("cls", cls), fmt::arg("module", "evolved_optimizer"), fmt::arg("total", total_steps),
                     fmt::arg("decay", num(genome::kNadamMomentumDecay)));
}

// The optimizer class: the genome's hyperparameters as defaults, clipping, then the
// genome's update rule per parameter (with two programs, per the group's "rest"), and eval()
// and train() where it is evaluated elsewhere.
std::string python_class(const Genome& g, const std::string& cls, const std::string& doc, std::int64_t total_steps) {
  const bool two = two_parts(g), elsewhere = g.is_program() && g.evaluates_elsewhere();
  const std::string per_group_clip = R"PY(            if group["clip_norm"] is not None and params:
                total = torch.stack([p.grad.norm(2) for p in params]).norm(2).item()
                coef = group["clip_norm"] / (total + 1e-6)
                if coef < 1.0:
                    for p in params:
                        p.grad.mul_(coef)
)PY";
  // Two programs clip over every parameter, as evoopt clips over the whole model.
  const std::string global_clip = R"PY(        everything = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if self.defaults["clip_norm"] is not None and everything:
            total = torch.stack([p.grad.norm(2) for p in everything]).norm(2).item()
            coef = self.defaults["clip_norm"] / (total + 1e-6)
            if coef < 1.0:
                for p in everything:
                    p.grad.mul_(coef)
)PY";
  const std::string guard = elsewhere ? R"PY(        if any("train_weights" in state for state in self.state.values()):
            raise RuntimeError("step() at the evaluation point: call train() first")
)PY"
                                      : "";
  return fmt::format(
      R"PY(class {cls}(torch.optim.Optimizer):
    """An optimizer discovered by evoopt.

{doc}
    Equal (within float rounding) to evoopt's GenomeOptimizer for this genome: the same
    state (exp_avg, exp_avg_sq, lion_exp_avg, step), clipping by the global gradient norm
    of {clip_scope}, the schedule over `total_steps` steps.{two_doc}{eval_doc}
    """

    def __init__(self, params, lr={lr}, betas=({b1}, {b2}), eps={eps}, weight_decay={wd},
                 warmup_fraction={warm}, cosine_decay={cos}, clip_norm={clip}, total_steps={total}{aux_sig}):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {{lr}}")
        if (warmup_fraction > 0.0 or cosine_decay) and total_steps <= 0:
            raise ValueError("this optimizer has a learning-rate schedule: give total_steps (the run's step count)")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_fraction=warmup_fraction,
                        cosine_decay=cosine_decay, clip_norm=clip_norm, total_steps=total_steps{aux_defaults})
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
{guard}        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
{global_clip}        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
{group_clip}            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError("{cls} does not support sparse gradients")
{step}        return loss
{eval_methods})PY",
      fmt::arg("cls", cls), fmt::arg("doc", doc), fmt::arg("total", total_steps), fmt::arg("lr", num(g.lr())), fmt::arg("b1", num(g.beta1)),
      fmt::arg("b2", num(g.beta2)), fmt::arg("eps", num(g.eps())), fmt::arg("wd", num(g.weight_decay())), fmt::arg("warm", num(g.warmup_fraction)),
      fmt::arg("cos", g.cosine_decay ? "True" : "False"), fmt::arg("clip", g.clip_norm ? num(*g.clip_norm) : "None"),
      fmt::arg("step", python_step(g)), fmt::arg("clip_scope", two ? "all parameters" : "each parameter group"),
      fmt::arg("two_doc", two ? "\n    Two programs: a group with \"rest\": True (biases, normalisation, the first layer, the head)\n"
                                "    steps with the second at aux_lr; split_parameters(model.named_parameters()) makes\n"
                                "    both groups as evoopt splits a model."
                              : ""),
      fmt::arg("eval_doc", elsewhere ? "\n    Evaluate the model after eval() (the parameters move to the evaluation point) and\n"
                                       "    call train() before the next step."
                                     : ""),
      fmt::arg("aux_sig", two ? ", aux_lr=" + num(g.aux_lr()) : ""), fmt::arg("aux_defaults", two ? ", aux_lr=aux_lr, rest=False" : ""),
      fmt::arg("guard", guard), fmt::arg("global_clip", two ? global_clip : ""), fmt::arg("group_clip", two ? "" : per_group_clip),
      fmt::arg("eval_methods", python_eval_methods(g)));
}

// Muon's split as a module function, for an optimizer with two programs.
constexpr const char* kPythonSplit = R"PY(def split_parameters(named_parameters):
    """evoopt's split of a model: the matrices between the first (input layer) and the last (head) step
    with the first program, everything else with the second ("rest": True, at aux_lr)."""
    named = list(named_parameters)
    matrices = [name for name, p in named if p.dim() >= 2]
    hidden = set(matrices[1:-1])
    groups = [{"params": [p for name, p in named if name in hidden]},
              {"params": [p for name, p in named if name not in hidden], "rest": True}]
    return [group for group in groups if group["params"]]


)PY";

std::string export_pytorch(const Genome& g, const ExportOptions& o) {
  const std::string cls = o.class_name;
  const std::string doc = lines_in(doc_lines(g, o.provenance, "    "), "    ", python_docstring_text);
  return python_module_head(cls, o.total_steps) + (g.is_program() ? kPythonProgramHelpers : "") + (two_parts(g) ? kPythonSplit : "") +
         python_class(g, cls, doc, o.total_steps);
}

// ---------------------------------------------------------------- libtorch C++

// One part's step for one parameter, at `indent`.
std::string cpp_part_step(const Genome& g, const std::string& indent) {
  const genome::rule::Rule rule = genome::rule::update_rule(g);
  std::string s;
  auto line = [&](const std::string& l) { s += indent + l + "\n"; };
  line("auto& st = state_for(p);");
  line("st.step += 1;");
  line("const std::int64_t t = st.step;");
  line("const double lr_t = o.lr * schedule_factor(o.warmup_fraction, o.cosine_decay, t - 1, o.total_steps);");
  for (Var v : kStateVars)
    if (rule.reads(v)) line(fmt::format("torch::Tensor& {} = st.{};", genome::rule::var_info(v).cpp, genome::rule::var_info(v).state_key));
  for (const auto& l : genome::rule::cpp_lines(rule)) line(l);
  return s;
}

std::string cpp_step(const Genome& g) {
  if (!two_parts(g)) return cpp_part_step(g, "    ");
  return "    if (rest) {\n" + cpp_part_step(genome::program_part(g, genome::Part::Rest), "      ") + "    } else {\n" +
         cpp_part_step(genome::program_part(g, genome::Part::Hidden), "      ") + "    }\n";
}

// One part's evaluation point for the parameter p with state st, at `indent` (nothing without one).
std::string cpp_part_x(const Genome& part, const std::string& indent) {
  const genome::rule::Rule at_x = genome::evaluation_rule(part);
  if (at_x.stmts.empty()) return "";
  std::string s;
  auto line = [&](const std::string& l) { s += indent + l + "\n"; };
  line("{");
  line("  const std::int64_t t = st.step;");
  line("  const double lr_t = o.lr * schedule_factor(o.warmup_fraction, o.cosine_decay, t - 1, o.total_steps);");
  line("  (void)lr_t;");
  for (Var v : kStateVars)
    if (at_x.reads(v)) line(fmt::format("  torch::Tensor& {} = st.{};", genome::rule::var_info(v).cpp, genome::rule::var_info(v).state_key));
  for (const auto& l : genome::rule::cpp_lines(at_x)) line("  " + l);
  line("  st.train_weights = p.detach().clone();");
  line("  p.copy_(x);");
  line("}");
  return s;
}

// to_evaluation() and to_training() of a genome evaluated elsewhere; empty otherwise.
std::string cpp_eval_methods(const Genome& g, const std::string& cls) {
  if (!g.is_program() || !g.evaluates_elsewhere()) return "";
  const std::string at_x = two_parts(g)
                               ? "        if (opts.rest()) {\n" + cpp_part_x(genome::program_part(g, genome::Part::Rest), "          ") +
                                     "        } else {\n" + cpp_part_x(genome::program_part(g, genome::Part::Hidden), "          ") + "        }\n"
                               : cpp_part_x(g, "        ");
  return fmt::format(R"HDR(  // Moves every parameter that has stepped to the weights this optimizer is evaluated at (x);
  // to_training() moves them back. step() refuses to run in between.
  void to_evaluation() {{
    torch::NoGradGuard no_grad;
    if (at_evaluation_) return;
    for (auto& group : param_groups_) {{
      const auto& opts = static_cast<const {cls}Options&>(group.options());
      const Hyper o{{{lr}, opts.eps(), opts.weight_decay(), opts.warmup_fraction(), opts.cosine_decay(), opts.total_steps()}};
      const double beta1 = opts.beta1(), beta2 = opts.beta2();
      (void)beta1;
      (void)beta2;
      for (auto& p : group.params()) {{
        auto it = states_.find(p.unsafeGetTensorImpl());
        if (it == states_.end()) continue;
        ParamState& st = it->second;
{at_x}      }}
    }}
    at_evaluation_ = true;
  }}
  void to_training() {{
    torch::NoGradGuard no_grad;
    for (auto& group : param_groups_)
      for (auto& p : group.params()) {{
        auto it = states_.find(p.unsafeGetTensorImpl());
        if (it != states_.end() && it->second.train_weights.defined()) {{
          p.copy_(it->second.train_weights);
          it->second.train_weights = torch::Tensor();
        }}
      }}
    at_evaluation_ = false;
  }}

)HDR",
                     fmt::arg("cls", cls), fmt::arg("lr", two_parts(g) ? "opts.rest() ? opts.aux_lr() : opts.lr()" : "opts.lr()"),
                     fmt::arg("at_x", at_x));
}

// The header's comment, includes and the options struct, whose defaults are the genome's
// hyperparameters.
std::string cpp_header_and_options(const Genome& g, const std::string& cls, const std::string& doc, std::int64_t total_steps) {
  return fmt::format(R"HDR(// Generated by `evoopt export --format cpp`. Header-only; depends only on libtorch.
// {cls}: an optimizer discovered by evoopt, as a torch::optim::Optimizer.
{doc}//
// Usage:
//   {cls} opt(model->parameters(), {cls}Options().total_steps(N));  // N: the schedule's horizon
//   ... loss.backward(); opt.step(); opt.zero_grad(); ...
// Equal (within float rounding) to evoopt's GenomeOptimizer for this genome. The per-parameter
// state lives in the object (torch::save of the optimizer does not hold it).
#pragma once
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

struct {cls}Options : public torch::optim::OptimizerCloneableOptions<{cls}Options> {{
  {cls}Options() = default;
  TORCH_ARG(double, lr) = {lr};
  TORCH_ARG(double, beta1) = {b1};
  TORCH_ARG(double, beta2) = {b2};
  TORCH_ARG(double, eps) = {eps};
  TORCH_ARG(double, weight_decay) = {wd};
  TORCH_ARG(double, warmup_fraction) = {warm};
  TORCH_ARG(bool, cosine_decay) = {cos};
  TORCH_ARG(std::optional<double>, clip_norm) = {clip};
  TORCH_ARG(std::int64_t, total_steps) = {total};{aux}
  double get_lr() const override {{ return lr(); }}
  void set_lr(const double lr) override {{ this->lr(lr); }}
}};

)HDR",
                     fmt::arg("cls", cls), fmt::arg("doc", doc), fmt::arg("lr", num(g.lr())), fmt::arg("b1", num(g.beta1)),
                     fmt::arg("b2", num(g.beta2)), fmt::arg("eps", num(g.eps())), fmt::arg("wd", num(g.weight_decay())),
                     fmt::arg("warm", num(g.warmup_fraction)), fmt::arg("cos", g.cosine_decay ? "true" : "false"),
                     fmt::arg("clip", g.clip_norm ? "std::optional<double>(" + num(*g.clip_norm) + ")" : "std::nullopt"),
                     fmt::arg("total", total_steps),
                     fmt::arg("aux", two_parts(g) ? "\n  TORCH_ARG(double, aux_lr) = " + num(g.aux_lr()) +
                                                        ";  // the second program's learning rate\n  TORCH_ARG(bool, rest) = false;  // this group "
                                                        "steps with the second program"
                                                  : ""));
}

// The optimizer class's public members: constructors, step() with clipping, the per-parameter
// state (and, with two programs, the split; where evaluated elsewhere, to_evaluation()).
std::string cpp_public_members(const Genome& g, const std::string& cls) {
  const bool program = g.is_program(), two = two_parts(g), elsewhere = program && g.evaluates_elsewhere();
  const std::string two_ctor = fmt::format(R"HDR(  // Two programs: `hidden` steps with the first, `rest` with the second at aux_lr
  // (split_parameters(model->named_parameters()) splits a model as evoopt does).
  {cls}(std::vector<torch::Tensor> hidden, std::vector<torch::Tensor> rest, {cls}Options options = {{}})
      : {cls}(std::move(hidden), options) {{
    if (!rest.empty()) {{
      auto r = std::make_unique<{cls}Options>(options);
      r->rest(true);
      add_param_group(torch::optim::OptimizerParamGroup(std::move(rest), std::move(r)));
    }}
  }}
  static std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> split_parameters(
      const torch::OrderedDict<std::string, torch::Tensor>& named) {{
    std::vector<std::string> matrices;
    for (const auto& item : named)
      if (item.value().dim() >= 2) matrices.push_back(item.key());
    std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> out;
    for (const auto& item : named) {{
      const auto at = std::find(matrices.begin(), matrices.end(), item.key());
      const bool hidden = at != matrices.end() && at != matrices.begin() && at + 1 != matrices.end();
      (hidden ? out.first : out.second).push_back(item.value());
    }}
    return out;
  }}

)HDR",
                                           fmt::arg("cls", cls));
  const std::string global_clip = R"HDR(    std::vector<torch::Tensor> everything;
    for (auto& group : param_groups_)
      for (auto& p : group.params())
        if (p.grad().defined()) everything.push_back(p);
    const auto& first = static_cast<const )HDR" +
                                  cls +
                                  R"HDR(Options&>(param_groups_.front().options());
    if (first.clip_norm() && !everything.empty()) {
      std::vector<torch::Tensor> norms;
      for (auto& p : everything) norms.push_back(p.grad().norm(2));
      const double coef = *first.clip_norm() / (torch::stack(norms).norm(2).item<double>() + 1e-6);
      if (coef < 1.0)
        for (auto& p : everything) p.grad().mul_(coef);
    }
)HDR";
  const std::string group_clip = R"HDR(      if (o.clip_norm() && !params.empty()) {
        std::vector<torch::Tensor> norms;
        for (auto& p : params) norms.push_back(p.grad().norm(2));
        const double coef = *o.clip_norm() / (torch::stack(norms).norm(2).item<double>() + 1e-6);
        if (coef < 1.0)
          for (auto& p : params) p.grad().mul_(coef);
      }
)HDR";
  return fmt::format(R"HDR(  explicit {cls}(std::vector<torch::Tensor> params, {cls}Options options = {{}})
      : torch::optim::Optimizer({{torch::optim::OptimizerParamGroup(std::move(params))}}, std::make_unique<{cls}Options>(options)) {{
    if ((options.warmup_fraction() > 0.0 || options.cosine_decay()) && options.total_steps() <= 0)
      throw std::invalid_argument("{cls}: this optimizer has a learning-rate schedule: give total_steps (the run's step count)");
  }}
{two_ctor}
  torch::Tensor step(LossClosure closure = nullptr) override {{
    torch::NoGradGuard no_grad;{guard}
    torch::Tensor loss;
    if (closure != nullptr) {{
      at::AutoGradMode enable_grad(true);
      loss = closure();
    }}
{global_clip}    for (auto& group : param_groups_) {{
      const auto& o = static_cast<const {cls}Options&>(group.options());
      std::vector<torch::Tensor> params;
      for (auto& p : group.params())
        if (p.grad().defined()) params.push_back(p);
{group_clip}      const Hyper h{{{lr}, o.eps(), o.weight_decay(), o.warmup_fraction(), o.cosine_decay(), o.total_steps()}};
      for (auto& p : params) step_one(p, h, o.beta1(), o.beta2(){rest_arg});
    }}
    return loss;
  }}

{eval_methods}  // Per-parameter state: exp_avg, exp_avg_sq, Lion's momentum, step, NAdam's mu product{slots_doc}.
  struct ParamState {{
    std::int64_t step = 0;
    torch::Tensor exp_avg, exp_avg_sq, lion_exp_avg{slots};
    double mu_product = 1.0;{program_state}
  }};
  const std::map<const void*, ParamState>& param_states() const {{ return states_; }}

)HDR",
                     fmt::arg("cls", cls), fmt::arg("slots", program ? ", slot0, slot1, slot2" : ""),
                     fmt::arg("slots_doc", program ? ", a program's state slots" : ""), fmt::arg("two_ctor", two ? "\n" + two_ctor : ""),
                     fmt::arg("guard", elsewhere ? "\n    if (at_evaluation_) throw std::logic_error(\"" + cls +
                                                       ": step() at the evaluation point; call to_training() first\");"
                                                 : ""),
                     fmt::arg("global_clip", two ? global_clip : ""), fmt::arg("group_clip", two ? "" : group_clip),
                     fmt::arg("lr", two ? "o.rest() ? o.aux_lr() : o.lr()" : "o.lr()"), fmt::arg("rest_arg", two ? ", o.rest()" : ""),
                     fmt::arg("eval_methods", cpp_eval_methods(g, cls)),
                     fmt::arg("program_state", program ? "\n    double lr_max = 0.0, weight_sum = 0.0;  // Schedule-Free's averaging weight"
                                                         "\n    torch::Tensor train_weights;            // while at the evaluation point"
                                                       : ""));
}

// The optimizer class's private members: schedule, Nesterov coefficients, state and the
// genome's update rule per parameter.
std::string cpp_private_members(const Genome& g) {
  return fmt::format(R"HDR(  struct Hyper {{
    double lr, eps, weight_decay, warmup_fraction;
    bool cosine_decay;
    std::int64_t total_steps;
  }};
  static double schedule_factor(double warmup_fraction, bool cosine_decay, std::int64_t step, std::int64_t total_steps) {{
    if (total_steps <= 0) return 1.0;
    const auto warmup = static_cast<std::int64_t>(std::llround(warmup_fraction * static_cast<double>(total_steps)));
    if (step < warmup) return static_cast<double>(step + 1) / static_cast<double>(warmup);
    if (!cosine_decay) return 1.0;
    const double span = static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup));
    const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
    return 0.5 * (1.0 + std::cos(M_PI * progress));
  }}
  static std::pair<double, double> nesterov_coefficients(double beta1, bool bias_correction, std::int64_t t, double& mu_product) {{
    if (!bias_correction) return {{1.0 - beta1, beta1}};
    const auto mu = [beta1](double s) {{ return beta1 * (1.0 - 0.5 * std::pow(0.96, s * {decay})); }};
    const double mu_t = mu(static_cast<double>(t)), mu_next = mu(static_cast<double>(t + 1));
    mu_product *= mu_t;
    return {{(1.0 - mu_t) / (1.0 - mu_product), mu_next / (1.0 - mu_product * mu_next)}};
  }}
  ParamState& state_for(const torch::Tensor& p) {{
    auto [it, fresh] = states_.try_emplace(p.unsafeGetTensorImpl());
    if (fresh) {{
      it->second.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      it->second.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      it->second.lion_exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);{slot_init}
    }}
    return it->second;
  }}
{helpers}  void step_one(torch::Tensor& p, const Hyper& o, double beta1, double beta2{rest_param}) {{
    (void)beta1;
    (void)beta2;
{step}  }}
  std::map<const void*, ParamState> states_;{at_eval}
)HDR",
                     fmt::arg("decay", num(genome::kNadamMomentumDecay)), fmt::arg("step", cpp_step(g)),
                     fmt::arg("helpers", g.is_program() ? kCppProgramHelpers : ""), fmt::arg("rest_param", two_parts(g) ? ", bool rest" : ""),
                     fmt::arg("at_eval", g.is_program() && g.evaluates_elsewhere() ? "\n  bool at_evaluation_ = false;" : ""),
                     fmt::arg("slot_init", g.is_program() ? "\n      it->second.slot0 = torch::zeros_like(p, torch::MemoryFormat::Preserve);"
                                                            "\n      it->second.slot1 = torch::zeros_like(p, torch::MemoryFormat::Preserve);"
                                                            "\n      it->second.slot2 = torch::zeros_like(p, torch::MemoryFormat::Preserve);"
                                                          : ""));
}

// The optimizer class: its public and private members.
std::string cpp_class(const Genome& g, const std::string& cls) {
  return "class " + cls + " : public torch::optim::Optimizer {\n public:\n" + cpp_public_members(g, cls) + " private:\n" + cpp_private_members(g) +
         "};\n";
}

std::string export_cpp(const Genome& g, const ExportOptions& o) {
  const std::string cls = o.class_name;
  const std::string doc = lines_in(doc_lines(g, o.provenance, "  "), "// ", cpp_comment_text);
  return cpp_header_and_options(g, cls, doc, o.total_steps) + cpp_class(g, cls);
}

std::string export_latex(const Genome& g, const ExportOptions& o) {
  std::string s = "% Generated by `evoopt export --format latex` (evoopt genome " + g.hash_hex() + ").\n";
  s += lines_in(provenance_lines(o.provenance), "% ", one_line);
  s += "\\begin{align*}\n" + latex_update(g) + "\n\\end{align*}\nwhere\n\\begin{align*}\n";
  const auto defs = latex_definitions(g, o.total_steps);
  for (std::size_t i = 0; i < defs.size(); ++i) s += "  &" + defs[i] + (i + 1 < defs.size() ? " \\\\\n" : "\n");
  s += "\\end{align*}\n";
  s += fmt::format("with $\\eta = {}$", brief(g.lr()));
  using genome::Constant;
  const genome::Program& p = g.program;
  const bool program = g.is_program();
  if (program ? p.reads(Constant::Name::Beta1) || p.uses(genome::ProgramOp::Nesterov) : g.needs_m() || g.needs_lion_m())
    s += fmt::format(", $\\beta_1 = {}$", brief(g.beta1));
  if (program ? p.reads(Constant::Name::Beta2) : g.needs_v() || g.needs_lion_m()) s += fmt::format(", $\\beta_2 = {}$", brief(g.beta2));
  if (program ? p.reads(Constant::Name::Eps) : g.needs_v()) s += fmt::format(", $\\epsilon = {}$", brief(g.eps()));
  if (g.log10_weight_decay) s += fmt::format(", $\\lambda = {}$", brief(g.weight_decay()));
  return s + ".\n";
}

std::string export_markdown(const Genome& g, const ExportOptions& o) {
  std::string s = "# " + markdown_text(o.class_name) + " (evoopt genome " + g.hash_hex() + ")\n\n";
  const auto provenance = provenance_lines(o.provenance);
  s += lines_in(provenance, "- ", markdown_text);
  if (!provenance.empty()) s += "\n";
  s += "Update rule:\n\n$$\n" + latex_update(g) + "\n$$\n\nwhere\n\n";
  for (const auto& d : latex_definitions(g, o.total_steps)) s += "$$\n" + d + "\n$$\n\n";
  s += hyper_table_markdown(g);
  s += "\nIn plain text: `" + g.formula() + "`; " + g.hyperparameters() + ".\n";
  return s;
}

// ---------------------------------------------------------------- class names

constexpr std::size_t kMaxClassName = 200;

bool identifier(const std::string& s) {
  const auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  return !s.empty() && alpha(s[0]) && std::all_of(s.begin(), s.end(), [&](char c) { return alpha(c) || digit(c); });
}

// The identifiers in a generated file's code: comments, string literals and (C++)
// preprocessor lines skipped; attribute and member names included.
std::set<std::string> code_identifiers(const std::string& text, Format f) {
  std::set<std::string> ids;
  const auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  bool line_start = true;  // only blanks so far on this line
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '\n' || c == ' ' || c == '\t') {
      line_start = line_start || c == '\n';
      ++i;
      continue;
    }
    const bool first = line_start;
    line_start = false;
    if ((f == Format::PyTorch && c == '#') || (f == Format::Cpp && (text.compare(i, 2, "//") == 0 || (first && c == '#')))) {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (f == Format::PyTorch && text.compare(i, 3, "\"\"\"") == 0) {
      const auto end = text.find("\"\"\"", i + 3);
      i = end == std::string::npos ? text.size() : end + 3;
    } else if (c == '"' || c == '\'') {
      for (++i; i < text.size() && text[i] != c && text[i] != '\n'; ++i)
        if (text[i] == '\\') ++i;
      if (i < text.size() && text[i] == c) ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      while (i < text.size() && (word(text[i]) || text[i] == '.')) ++i;
    } else if (word(c)) {
      const std::size_t start = i;
      while (i < text.size() && word(text[i])) ++i;
      ids.insert(text.substr(start, i - start));
    } else {
      ++i;
    }
  }
  return ids;
}

const std::set<std::string_view> kPythonKeywords = {"False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
                                                    "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
                                                    "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
                                                    "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield"};
const std::set<std::string_view> kPythonSoftKeywords = {"_", "case", "match", "type"};
const std::set<std::string_view> kCppKeywords = {
    "alignas",    "alignof",      "asm",      "auto",         "bool",     "break",     "case",          "catch",       "char",
    "char8_t",    "char16_t",     "char32_t", "class",        "concept",  "const",     "consteval",     "constexpr",   "constinit",
    "const_cast", "continue",     "co_await", "co_return",    "co_yield", "decltype",  "default",       "delete",      "do",
    "double",     "dynamic_cast", "else",     "enum",         "explicit", "export",    "extern",        "false",       "float",
    "for",        "friend",       "goto",     "if",           "inline",   "int",       "long",          "mutable",     "namespace",
    "new",        "noexcept",     "nullptr",  "operator",     "private",  "protected", "public",        "register",    "reinterpret_cast",
    "requires",   "return",       "short",    "signed",       "sizeof",   "static",    "static_assert", "static_cast", "struct",
    "switch",     "template",     "this",     "thread_local", "throw",    "true",      "try",           "typedef",     "typeid",
    "typename",   "union",        "unsigned", "using",        "virtual",  "void",      "volatile",      "wchar_t",     "while"};
const std::set<std::string_view> kCppAlternativeTokens = {"and",    "and_eq", "bitand", "bitor", "compl", "not",
                                                          "not_eq", "or",     "or_eq",  "xor",   "xor_eq"};
const std::set<std::string_view> kCppSpecialIdentifiers = {"final", "override", "import", "module"};
// Macros of the C and C++ standard libraries and of GNU mode that a class name would collide with.
const std::set<std::string_view> kCppMacros = {"assert", "errno",  "offsetof", "setjmp", "va_arg", "va_copy", "va_end", "va_start",
                                               "stdin",  "stdout", "stderr",   "NULL",   "EOF",    "linux",   "unix",   "i386"};
// Members of torch::optim::Optimizer, the class's base: the class's own name would hide them in it.
const std::set<std::string_view> kTorchOptimizerMembers = {"add_param_group", "add_parameters", "zero_grad", "parameters",  "size",
                                                           "defaults",        "param_groups",   "state",     "save",        "load",
                                                           "param_groups_",   "state_",         "defaults_", "LossClosure", "step"};
// Namespaces of libtorch and the standard library.
const std::set<std::string_view> kTorchNamespaces = {"c10", "caffe2", "aten", "torch", "at", "std"};

std::string export_text(const Genome& g, Format format, const ExportOptions& o);

// Throws evoopt::Error (one line: the name and why) unless `name` can name the exported
// class in `format`'s language without breaking or changing the file around it.
void check_class_name(const std::string& name, Format format, const Genome& g, const ExportOptions& o) {
  const std::string shown = "class name '" + one_line(name) + "'";
  if (!identifier(name)) throw Error(shown + " is not an identifier (ASCII letters, digits and _, not starting with a digit)");
  if (name.size() > kMaxClassName) throw Error(fmt::format("class name of {} characters is longer than the limit of {}", name.size(), kMaxClassName));
  if (format == Format::PyTorch) {
    if (kPythonKeywords.count(name)) throw Error(shown + " is a Python keyword");
    if (kPythonSoftKeywords.count(name)) throw Error(shown + " is a Python soft keyword");
    if (name.size() > 4 && name.compare(0, 2, "__") == 0 && name.compare(name.size() - 2, 2, "__") == 0)
      throw Error(shown + " is a Python special name (__name__ form)");
  } else if (format == Format::Cpp) {
    if (kCppKeywords.count(name)) throw Error(shown + " is a C++ keyword");
    if (kCppAlternativeTokens.count(name)) throw Error(shown + " is a C++ alternative token (an operator)");
    if (kCppSpecialIdentifiers.count(name)) throw Error(shown + " is a C++ identifier with a special meaning (final, override, import, module)");
    if (name.find("__") != std::string::npos) throw Error(shown + " is reserved in C++ (it contains a double underscore)");
    if (name[0] == '_') throw Error(shown + " is reserved in C++ (a leading underscore at global scope)");
    if (kCppMacros.count(name)) throw Error(shown + " is a standard C/C++ macro");
    if (kTorchNamespaces.count(name)) throw Error(shown + " is a namespace of libtorch or the standard library");
    if (kTorchOptimizerMembers.count(name)) throw Error(shown + " is a member of torch::optim::Optimizer (the base class), which it would hide");
  } else {
    return;  // LaTeX and Markdown only show the name
  }
  // The file's own names: what the code around the class uses, found in the text generated
  // for this genome with a placeholder for the class (and, in C++, its Options struct).
  ExportOptions probe;
  probe.total_steps = o.total_steps;
  probe.class_name = "EvoOptClassNamePlaceholder";
  std::set<std::string> used = code_identifiers(export_text(g, format, probe), format);
  used.erase(probe.class_name);
  used.erase(probe.class_name + "Options");
  if (used.count(name)) throw Error(shown + " is a name the generated " + format_name(format) + " file itself uses");
  if (format == Format::Cpp && used.count(name + "Options"))
    throw Error(shown + ": its options struct " + name + "Options is a name the generated cpp file itself uses");
}

std::string export_text(const Genome& g, Format format, const ExportOptions& o) {
  switch (format) {
    case Format::PyTorch:
      return export_pytorch(g, o);
    case Format::Cpp:
      return export_cpp(g, o);
    case Format::Latex:
      return export_latex(g, o);
    case Format::Markdown:
      return export_markdown(g, o);
  }
  throw Error("unknown export format");
}

}  // namespace

std::string export_genome(const Genome& genome, Format format, const ExportOptions& options) {
  genome.validate(genome::Bounds::kHardMaxTerms);
  if (!genome.has_rule())
    throw Error(
        std::string("the genome is the hand-made optimizer ") + genome::algorithm_name(genome.algorithm) +
        " (a comparison baseline), not an update rule; export writes weighted sums of terms and programs (the authors publish their own code)");
  if (options.total_steps < 0) throw Error("total steps must be >= 0, got " + std::to_string(options.total_steps));
  const Genome g = genome.canonical();
  if (g.has_schedule() && options.total_steps == 0)
    throw Error("the genome has a learning-rate schedule (warmup/cosine over the run): give --total-steps N (the run's step count)");
  check_class_name(options.class_name, format, g, options);
  return export_text(g, format, options);
}

std::string latex_update(const Genome& g) {
  if (g.is_program()) {  // u is the program's output; its statements are the definitions
    // A program that reads lr applies η_t itself, one that reads wd its weight decay.
    const bool own_lr = g.program.reads(Constant::Name::Lr), own_decay = g.program.reads(Constant::Name::Wd);
    std::string out = "\\theta_t = \\theta_{t-1}";
    if (g.log10_weight_decay && g.decoupled_weight_decay && !own_decay) out += " - \\eta_t \\lambda\\, \\theta_{t-1}";
    out += own_lr ? " - u_t" : " - \\eta_t\\, u_t";
    if (two_parts(g)) out += " \\quad\\text{(hidden weight matrices; the other parameters below, at } \\eta_{\\mathrm{aux}}\\text{)}";
    return out;
  }
  std::string sum;
  for (std::size_t i = 0; i < g.terms.size(); ++i) {
    const double w = g.terms[i].weight;
    // |w|·term as one product, so a sum term is bracketed.
    std::string f = genome::rule::latex(genome::rule::num(std::fabs(w)) * genome::term_info(g.terms[i].term).value);
    if (!g.bias_correction)
      for (const char* hat : {"\\hat{m}", "\\hat{v}"})
        for (auto pos = f.find(hat); pos != std::string::npos; pos = f.find(hat)) f.replace(pos, 7, std::string(1, hat[5]));
    sum += (i == 0 ? (w < 0 ? "-" : "") : (w < 0 ? " - " : " + ")) + f;
  }
  std::string out = "\\theta_t = \\theta_{t-1}";
  if (g.log10_weight_decay && g.decoupled_weight_decay) out += " - \\eta_t \\lambda\\, \\theta_{t-1}";
  return out + " - \\eta_t \\left(" + sum + "\\right)";
}

// The definitions the update reads, one LaTeX line each.
std::vector<std::string> latex_definitions(const Genome& g, std::int64_t total_steps) {
  if (two_parts(g)) {  // the hidden matrices' program, then the rest's statements under their own heading
    std::vector<std::string> d = latex_definitions(genome::program_part(g, genome::Part::Hidden), total_steps);
    const Genome rest = genome::program_part(g, genome::Part::Rest);
    std::vector<std::string> r = latex_definitions(rest, total_steps);
    // Its gradient, clipping and decay lines are the hidden part's (the first ones), η_t its last.
    const std::size_t head =
        1 + (g.clip_norm ? 1 : 0) + (g.log10_weight_decay && !g.decoupled_weight_decay && !g.program_rest.reads(Constant::Name::Wd) ? 1 : 0);
    d.push_back(fmt::format("\\text{{The other parameters (biases, normalisation, first layer, head), at }} \\eta_{{\\mathrm{{aux}}}} = {}:\\ {}",
                            brief(g.aux_lr()), latex_update(rest)));
    d.insert(d.end(), r.begin() + static_cast<std::ptrdiff_t>(std::min(head, r.size())), r.end() - (r.empty() ? 0 : 1));
    return d;
  }
  std::vector<std::string> d;
  d.push_back("g_t = \\nabla_\\theta L(\\theta_{t-1})");
  if (g.clip_norm)
    d.push_back(
        fmt::format("g_t \\leftarrow g_t \\cdot \\min\\!\\left(1, \\frac{{{}}}{{\\lVert g_t \\rVert_2 + 10^{{-6}}}}\\right) \\quad\\text{{(norm over "
                    "all parameters)}}",
                    brief(*g.clip_norm)));
  if (g.log10_weight_decay && !g.decoupled_weight_decay && !(g.is_program() && g.program.reads(Constant::Name::Wd)))
    d.push_back("g_t \\leftarrow g_t + \\lambda\\,\\theta_{t-1} \\quad\\text{(L2 weight decay)}");
  // A program's statements as written (not fused), so that u_t is defined.
  const genome::rule::Rule rule = g.is_program() ? genome::program_rule(g, /*fuse=*/false) : genome::rule::update_rule(g);
  for (const auto& stmt : rule.stmts) {
    if (stmt.kind == genome::rule::Stmt::Kind::AverageWeight) {
      d.push_back(
          "c_t = \\frac{w_t}{\\sum_{i\\le t} w_i},\\ w_t = \\left(\\max_{i\\le t} \\eta_i\\right)^2 \\quad\\text{(Schedule-Free's averaging "
          "weight)}");
      continue;
    }
    // A program's statements in order: a state slot takes a new value (←), a temporary or u is defined (=).
    using Kind = genome::rule::Stmt::Kind;
    if (g.is_program() && (stmt.kind == Kind::Assign || (stmt.kind == Kind::Let && stmt.target != Var::G))) {
      d.push_back(std::string(genome::rule::var_info(stmt.target).latex) + (stmt.kind == Kind::Assign ? " \\leftarrow " : " = ") +
                  genome::rule::latex(stmt.value));
      continue;
    }
    if (stmt.kind != Kind::Update || stmt.target == Var::Param) continue;
    d.push_back(genome::rule::latex_definition(stmt) + (stmt.target == Var::C ? " \\quad\\text{(after the update)}" : ""));
    if (g.bias_correction && stmt.target == Var::M) d.push_back("\\hat{m}_t = m_t / (1-\\beta_1^t)");
    if (g.bias_correction && stmt.target == Var::V) d.push_back("\\hat{v}_t = v_t / (1-\\beta_2^t)");
  }
  const bool nesterov = g.is_program()
                            ? g.program.uses(genome::ProgramOp::Nesterov)
                            : std::any_of(g.terms.begin(), g.terms.end(), [](const genome::TermGene& t) { return t.term == Term::Nesterov; });
  if (nesterov) {
    if (g.bias_correction)
      d.push_back(
          "\\mu_t = \\beta_1\\left(1 - \\tfrac12\\, 0.96^{0.004\\,t}\\right),\\ a_t = \\frac{1-\\mu_t}{1-\\prod_{i\\le t}\\mu_i},\\ "
          "b_t = \\frac{\\mu_{t+1}}{1-\\prod_{i\\le t+1}\\mu_i} \\quad\\text{(NAdam)}");
    else
      d.push_back("a_t = 1-\\beta_1,\\ b_t = \\beta_1");
  }
  if (g.is_program())
    for (const auto& stmt : genome::evaluation_rule(g).stmts) {
      std::string value = genome::rule::latex(stmt.value);  // θ after the step
      for (auto at = value.find("\\theta_{t-1}"); at != std::string::npos; at = value.find("\\theta_{t-1}")) value.replace(at, 12, "\\theta_t");
      d.push_back("x_t = " + value + " \\quad\\text{(the weights the model is evaluated at)}");
    }
  std::string eta = "\\eta_t = \\eta";
  if (g.has_schedule()) {
    const auto warm = static_cast<std::int64_t>(std::llround(g.warmup_fraction * static_cast<double>(total_steps)));
    if (warm > 0) eta += fmt::format("\\cdot \\min\\!\\left(1, \\frac{{t}}{{{}}}\\right)", warm);
    if (g.cosine_decay)
      eta += fmt::format(
          "\\cdot \\tfrac12\\left(1+\\cos\\left(\\pi \\min\\left(1, \\frac{{t-1-{}}}{{{}}}\\right)\\right)\\right) \\text{{ for }} t > {}", warm,
          std::max<std::int64_t>(1, total_steps - warm), warm);
    eta += fmt::format(" \\quad\\text{{(over {} steps)}}", total_steps);
  }
  d.push_back(eta);
  return d;
}

namespace {

// Reading a run directory's JSON files (JsonView): every value checked for its type (and
// range) before use; an error is one line naming the file and the key.
constexpr std::size_t kMaxLabel = 1000;  // task names and labels, in bytes

// A run directory's JSON file; its name in errors kept on one line.
JsonView read_run_file(const fs::path& path) {
  JsonView v(read_json_file(path), one_line(path.string()));
  if (!v.is_object()) v.fail_expected("an object");
  return v;
}

std::string bounded_text(const JsonView& v) {
  std::string s = v.get<std::string>();
  if (s.size() > kMaxLabel) v.fail(fmt::format("a string of {} bytes is longer than the limit of {}", s.size(), kMaxLabel));
  return s;
}

// "mean accuracy M ± S over N fresh seeds on the test split ("label" m; ...), STEPS steps"
// from summary.json's final_test; empty when the summary has none.
std::string test_result(const JsonView& summary, std::int64_t steps) {
  const auto ft = summary.find("final_test");
  if (!ft) return "";
  const double mean = ft->get<double>("overall_mean");
  const double sd = ft->get<double>("overall_std");
  const JsonView per_task = ft->at("per_task");
  const auto members = per_task.members();
  if (members.empty()) per_task.fail("expected at least one task, got none");
  std::string tasks;
  std::size_t seeds = 0;
  for (const auto& [name, t] : members) {
    if (name.size() > kMaxLabel) t.fail(fmt::format("a task name of {} bytes is longer than the limit of {}", name.size(), kMaxLabel));
    const auto label = t.find("label");
    const std::string shown = label ? bounded_text(*label) : name;
    const double task_mean = t.get<double>("mean");
    seeds = std::max(seeds, t.get<std::vector<double>>("accuracy").size());
    tasks += (tasks.empty() ? "" : "; ") + fmt::format("{} {:.4f}", quoted(shown), task_mean);
  }
  return fmt::format("mean accuracy {:.4f} ± {:.4f} over {} fresh seeds on the test split ({}), {} steps", mean, sd, seeds, tasks, steps);
}

// The run directory's name (its last component), never the path to it.
std::string run_name(const fs::path& dir) {
  fs::path p = fs::absolute(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

ExportSource load_export_source(const std::string& what) {
  ExportSource s;
  const fs::path p(what);
  if (fs::is_directory(p)) {
    // Read leniently (no format header required): a run directory made by hand exports too.
    const RunDirectory dir(p);
    const fs::path best_path = dir / run_files::kBestGenome;
    if (!fs::exists(best_path)) throw Error(one_line(what) + ": not a run directory with a winner (no best_genome.json)");
    // Everything read and checked before anything is returned (and so before anything is written).
    const JsonView best = read_run_file(best_path);
    const JsonView genome_json = best.at("genome");
    if (!genome_json.is_object()) genome_json.fail_expected("an object");
    s.genome = genome_json.convert([](const json& j) {
      Genome g = Genome::from_json(j);
      g.validate(genome::Bounds::kHardMaxTerms);
      return g;
    });
    if (const auto v = best.find("validation_fitness"); v && !v->is_null()) s.provenance.validation_fitness = v->get<double>();
    if (dir.has(run_files::kConfig))
      s.steps = read_run_file(dir / run_files::kConfig).get_in<std::int64_t>("steps", 1, std::numeric_limits<std::int64_t>::max());
    if (dir.has(run_files::kSummary)) s.provenance.test_result = test_result(read_run_file(dir / run_files::kSummary), s.steps);
    s.provenance.source = "run " + quoted(run_name(p)) + " (best_genome.json)";
    return s;
  }
  try {
    s.genome = genome::load_genome(what);
  } catch (const Error& e) {
    throw Error(one_line(e.what()));  // the name as given may hold a newline
  }
  const auto presets = genome::preset_names();
  const bool preset = what == "lion-like" || std::find(presets.begin(), presets.end(), what) != presets.end();
  // A file by its name alone: where it lies on this machine stays out of the export.
  s.provenance.source = preset ? "evoopt preset " + what : "genome file " + quoted(p.filename().string());
  return s;
}

}  // namespace evoopt::exports
