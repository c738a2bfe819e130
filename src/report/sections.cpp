// The report's HTML sections, each made from a Run (parts.hpp) alone.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/experiment/stats.hpp"
#include "evoopt/export/export.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/optim/schedule.hpp"
#include "evoopt/report/parts.hpp"
#include "evoopt/report/report.hpp"

namespace evoopt::report {

namespace {

std::string f4(double v) { return fmt::format("{:.4f}", v); }

// Mean ± 95% CI half-width (Student's t) of `v`.
BarValue mean_ci(const std::vector<double>& v) {
  BarValue b;
  if (v.empty()) return b;
  const auto s = experiment::summarize(v);
  b.value = s.mean;
  b.half = s.n > 1 ? experiment::t_quantile_975(s.n - 1) * s.stddev / std::sqrt(static_cast<double>(s.n)) : 0.0;
  b.present = true;
  return b;
}

}  // namespace

std::string section_search(const Run& r) {
  if (r.history.empty()) return "<p class=\"note\">No generation has finished yet.</p>";
  std::vector<Series> fit = {{"best", {}}, {"mean", {}}, {"median", {}}};
  Band spread{"mean ± std", {}, {}, {}};
  std::map<std::string, Series> per_task;
  std::map<std::string, Series> terms;
  Series distance{"gene distance", {}}, diversity{"distinct share", {}, true};
  bool have_terms = false;
  for (const auto& g : r.history) {
    const double x = g.generation;
    fit[0].points.emplace_back(x, g.best);
    fit[1].points.emplace_back(x, g.mean);
    fit[2].points.emplace_back(x, g.median);
    spread.x.push_back(x);
    spread.lo.push_back(g.mean - g.stddev);
    spread.hi.push_back(g.mean + g.stddev);
    for (const auto& t : r.tasks)
      if (g.best_per_task.count(t)) {
        per_task[t].name = r.labels.at(t);
        per_task[t].points.emplace_back(x, g.best_per_task.at(t));
      }
    distance.points.emplace_back(x, g.gene_distance);
    diversity.points.emplace_back(x, g.diversity);
    if (!g.term_share.empty()) {
      have_terms = true;
      for (const auto& [name, share] : g.term_share) terms[name].name = name;
    }
  }
  if (have_terms)
    for (const auto& g : r.history) {
      const double x = g.generation;
      for (auto& [name, s] : terms) s.points.emplace_back(x, g.term_share.count(name) ? g.term_share.at(name) : 0.0);
    }
  std::string out;
  out += "<h2 id=\"search\">Search</h2>";
  out +=
      "<p>Validation fitness (mean accuracy over the search tasks; a diverged run counts −1) of the population after each generation. The band is "
      "the population's mean ± std.</p>";
  double lo = 1.0;
  for (const auto& s : fit)
    for (const auto& p : s.points) lo = std::min(lo, p.second);
  for (double v : spread.lo) lo = std::min(lo, v);
  out += line_chart("fitness", "Fitness per generation", "generation", "validation fitness", fit, {spread}, std::pair{std::max(-1.0, lo - 0.02), 1.0},
                    true);
  std::vector<Series> pt;
  for (const auto& t : r.tasks)
    if (per_task.count(t)) pt.push_back(per_task[t]);
  out += line_chart("per-task", "Best validation accuracy per task", "generation", "validation accuracy", pt, {}, std::nullopt, true);
  if (have_terms) {
    std::vector<Series> ts;
    for (const auto& [name, s] : terms) ts.push_back(s);
    out += line_chart("terms", "Share of the population using each term", "generation", "share of genomes", ts, {}, std::pair{0.0, 1.0}, true);
  } else {
    out += "<p class=\"note\">Term shares were not recorded by the evoopt that ran this search.</p>";
  }
  out += line_chart("diversity", "Diversity", "generation", "gene distance / distinct share", {distance, diversity}, {}, std::pair{0.0, 1.0}, true);
  // The table behind the charts.
  out += "<details><summary>Generation table</summary><table><tr><th>generation</th><th>best</th><th>mean</th><th>median</th><th>std</th>";
  for (const auto& t : r.tasks) out += "<th>best " + esc(r.labels.at(t)) + "</th>";
  out += "<th>gene distance</th><th>new runs</th><th>seconds</th></tr>";
  for (const auto& g : r.history) {
    out +=
        fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>", g.generation, f4(g.best), f4(g.mean), f4(g.median), f4(g.stddev));
    for (const auto& t : r.tasks) out += "<td>" + (g.best_per_task.count(t) ? f4(g.best_per_task.at(t)) : std::string("–")) + "</td>";
    out += fmt::format("<td>{:.3f}</td><td>{}</td><td>{:.1f}</td></tr>", g.gene_distance, g.evaluations, g.seconds);
  }
  out += "</table></details>";
  return out;
}

namespace {

// At most 20 characters (the column is narrow; the node's tooltip has it all).
std::string brief_label(const std::string& s) {
  if (s.size() <= 20) return s;
  std::size_t cut = 19;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
  return s.substr(0, cut) + "…";
}

}  // namespace

std::string section_tree(const Run& r) {
  if (!r.best || r.lineage.empty()) return "";
  std::map<std::uint64_t, const ga::Individual*> by_id;
  for (const auto& i : r.lineage) by_id[i.id] = &i;
  const std::uint64_t winner = r.best->id;
  // Ancestors of the winner (breadth first), each once.
  std::vector<std::uint64_t> order;
  std::set<std::uint64_t> seen{winner};
  std::vector<std::uint64_t> queue{winner};
  for (std::size_t q = 0; q < queue.size(); ++q) {
    order.push_back(queue[q]);
    if (!by_id.count(queue[q])) continue;
    for (const auto id : by_id[queue[q]]->parents)
      if (seen.insert(id).second) queue.push_back(id);
  }
  std::map<int, std::vector<std::uint64_t>> by_gen;
  int max_gen = 0;
  for (auto id : order) {
    const int g = by_id.count(id) ? by_id[id]->generation : 0;
    by_gen[g].push_back(id);
    max_gen = std::max(max_gen, g);
  }
  std::size_t tallest = 1;
  for (auto& [g, ids] : by_gen) {
    std::sort(ids.begin(), ids.end());
    tallest = std::max(tallest, ids.size());
  }
  const int col = 120, rowh = 44, left = 50, top = 40;
  const int w = left + col * (max_gen + 1) + 60, h = top + rowh * static_cast<int>(tallest) + 20;
  std::map<std::uint64_t, std::pair<double, double>> pos;
  for (const auto& [g, ids] : by_gen)
    for (std::size_t k = 0; k < ids.size(); ++k) pos[ids[k]] = {left + col * g, top + rowh * static_cast<double>(k) + 10};
  std::string edges, nodes;
  std::map<std::string, std::string> origin_color;
  auto kind = [](const std::string& origin) { return origin.rfind("seed:", 0) == 0 ? std::string("seed") : origin; };
  for (auto id : order) {
    if (!by_id.count(id)) continue;
    const ga::Individual& ind = *by_id[id];
    for (const auto pid : ind.parents) {
      if (!pos.count(pid)) continue;
      edges += fmt::format("<line x1=\"{:.0f}\" y1=\"{:.0f}\" x2=\"{:.0f}\" y2=\"{:.0f}\" class=\"edge\"/>", pos[pid].first, pos[pid].second,
                           pos[id].first, pos[id].second);
    }
    const std::string& origin = ind.origin;
    const std::string k = kind(origin);
    if (!origin_color.count(k)) origin_color[k] = color(origin_color.size());
    std::string muts;
    for (const auto& m : ind.mutations) muts += (muts.empty() ? "" : ", ") + m;
    nodes += fmt::format(
        "<g class=\"pt node\" data-id=\"{}\" data-origin=\"{}\"><circle cx=\"{:.0f}\" cy=\"{:.0f}\" r=\"{}\" fill=\"{}\"/><text x=\"{:.0f}\" "
        "y=\"{:.0f}\" "
        "class=\"nodelabel\">#{} {}</text><text x=\"{:.0f}\" y=\"{:.0f}\" class=\"nodesub\">{}</text><title>#{} generation {}, {}{}; fitness "
        "{:.4f}\n{}</title></g>",
        id, esc(origin), pos[id].first, pos[id].second, id == winner ? 8 : 6, origin_color[k], pos[id].first + 10, pos[id].second + 4, id,
        fmt::format("{:.3f}", ind.fitness), pos[id].first + 10, pos[id].second + 16, esc(brief_label(origin + (muts.empty() ? "" : ": " + muts))), id,
        ind.generation, esc(origin), muts.empty() ? "" : esc(" (" + muts + ")"), ind.fitness, esc(ind.genome.formula()));
  }
  std::string gens;
  for (int g = 0; g <= max_gen; ++g) gens += fmt::format("<text x=\"{}\" y=\"24\" class=\"xtick\">gen {}</text>", left + col * g, g);
  std::string legend;
  int k = 0;
  for (const auto& [name, c] : origin_color)
    legend += fmt::format("<span class=\"key\"><span class=\"dot\" style=\"background:{}\"></span>{}</span>", c, esc(name)), ++k;
  return fmt::format(
      "<h2 id=\"tree\">The winner's family tree</h2><p>Every ancestor of the winner (#{}), by the generation it was made in, with the operator that "
      "made "
      "it (seed optimizer, random, crossover, mutation, elite copy) and the genes its mutation changed; hover a node for its formula. {}</p>"
      "<div class=\"scroll\"><svg class=\"chart wide\" data-chart=\"family-tree\" data-points=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" "
      "height=\"{}\" "
      "role=\"img\" "
      "aria-label=\"family tree\">{}{}{}</svg></div>",
      winner, legend, order.size(), w, h, w, h, gens, edges, nodes);
}

namespace {

std::string hyper_rows(const genome::Genome& g) {
  std::string t;
  auto row = [&](const std::string& k, const std::string& v) { t += "<tr><td>" + k + "</td><td>" + esc(v) + "</td></tr>"; };
  row("learning rate η", fmt::format("{:.4g}", g.lr()));
  if (g.needs_m() || g.needs_lion_m()) row("β1", fmt::format("{:.6g}", g.beta1));
  if (g.needs_v() || g.needs_lion_m()) row("β2", fmt::format("{:.6g}", g.beta2));
  if (g.needs_v()) row("ε", fmt::format("{:.3g}", g.eps()));
  row("weight decay λ", g.log10_weight_decay ? fmt::format("{:.3g} ({})", g.weight_decay(), g.decoupled_weight_decay ? "decoupled" : "L2") : "off");
  if (g.reads_bias_correction()) row("bias correction", g.bias_correction ? "on" : "off");
  row("warmup", fmt::format("{:.3g}% of the steps", g.warmup_fraction * 100));
  row("cosine decay", g.cosine_decay ? "on" : "off");
  row("gradient clipping", g.clip_norm ? fmt::format("global norm ≤ {:g}", *g.clip_norm) : "off");
  return "<table class=\"kv\">" + t + "</table>";
}

}  // namespace

std::string section_winner(const Run& r, std::int64_t steps) {
  if (!r.best) return "<p class=\"note\">No winner yet.</p>";
  const genome::Genome& g = r.best->genome;
  std::string out = "<h2 id=\"winner\">The winner</h2>";
  out += fmt::format("<p>Individual #{} of generation {}, validation fitness {:.4f}", r.best->id, r.best->generation, r.best->validation_fitness);
  if (!r.best->validation_per_task.empty()) {
    std::string per;
    for (const auto& t : r.tasks)
      if (r.best->validation_per_task.count(t)) per += (per.empty() ? "" : ", ") + r.labels.at(t) + " " + f4(r.best->validation_per_task.at(t));
    out += " (" + esc(per) + ")";
  }
  out += ".</p><div class=\"formula\">" + latex_to_mathml(exports::latex_update(g)) + "</div><p>where</p><div class=\"defs\">";
  for (const auto& d : exports::latex_definitions(g, steps)) out += latex_to_mathml(d);
  out += "</div><p class=\"plain\">Plain text: <code>" + esc(g.formula()) + "</code></p>";
  out += "<div class=\"cols\"><div>" + hyper_rows(g) + "</div><div>";
  Series sched{"learning-rate multiplier", {}, false, false};
  for (std::int64_t s = 0; s < steps; ++s)
    sched.points.emplace_back(static_cast<double>(s + 1), optim::schedule_factor(g.warmup_fraction, g.cosine_decay, s, steps));
  out += line_chart("schedule", fmt::format("Schedule over the {} training steps", steps), "step", "η_t / η", {sched}, {}, std::pair{0.0, 1.05});
  out += "</div></div>";
  out += fmt::format(
      "<p>Export it: <code>evoopt export {} --format pytorch -o evolved_optimizer.py</code> (or <code>--format cpp</code>, <code>latex</code>, "
      "<code>markdown</code>).</p>",
      esc(r.dir.string()));
  return out;
}

std::string section_final(const Run& r) {
  if (!r.summary) return "";
  const Summary& s = *r.summary;
  std::string out = "<h2 id=\"test\">Final test and cost</h2>";
  out +=
      "<p>The winner on the test split, touched once, with fresh seeds (mean ± std over seeds):</p><table><tr><th>task</th><th>test "
      "accuracy</th><th>per seed</th></tr>";
  for (const auto& t : r.tasks)
    if (s.final_test.count(t)) {
      const FinalTestTask& pt = s.final_test.at(t);
      std::string seeds;
      for (double a : pt.accuracy) seeds += (seeds.empty() ? "" : ", ") + f4(a);
      out += fmt::format("<tr><td>{}</td><td>{} ± {}</td><td>{}</td></tr>", esc(r.labels.at(t)), f4(pt.mean), f4(pt.std), seeds);
    }
  out += fmt::format("<tr><td><b>overall</b></td><td><b>{} ± {}</b></td><td></td></tr></table>", f4(s.overall_mean), f4(s.overall_std));
  out += fmt::format(
      "<p>Cost: {} search training runs ({} steps, {:.0f} s of single-core training), {} further runs ({} steps); the process and its workers: "
      "{:.0f} s "
      "wall, {:.0f} s CPU.</p>",
      s.search_runs, s.search_steps, s.search_train_seconds, s.other_runs, s.other_steps, s.wall_seconds, s.cpu_seconds);
  if (s.break_even) {
    const BreakEven& be = *s.break_even;
    out += "<p>Break-even: " + esc(be.verdict) + ".</p>";
    if (!be.measured.empty()) {
      Series base{be.baseline + " with more steps", {}};
      base.points.emplace_back(1.0, be.baseline_val_fitness);
      for (const auto& [multiple, fitness] : be.measured) base.points.emplace_back(multiple, fitness);
      Series win{"the winner at 1×", {{1.0, be.winner_val_fitness}}};
      out += line_chart("break-even", "Break-even: the best seed optimizer with more steps", "steps multiple", "validation fitness", {base, win});
    }
  }
  return out;
}

namespace {

// Mean smoothed training loss per step over the test runs of `hash` on `task` at `steps`.
Series loss_curve(const std::vector<std::pair<eval::RunKey, train::RunResult>>& journal, const std::string& hash, const std::string& task,
                  std::int64_t steps, const std::string& name, bool dashed) {
  std::map<std::int64_t, std::pair<double, int>> sum;
  for (const auto& [k, result] : journal) {
    if (k.genome != hash || k.task != task || k.split != "test" || k.steps != steps) continue;
    for (const auto& p : result.loss_curve) {
      if (!std::isfinite(p.smoothed)) continue;
      auto& s = sum[p.step];
      s.first += p.smoothed;
      ++s.second;
    }
  }
  Series s{name, {}, dashed, false};
  for (const auto& [step, v] : sum) s.points.emplace_back(static_cast<double>(step), v.first / v.second);
  return s;
}

std::string diff_cell(const std::optional<Paired>& d) {
  if (!d) return "";
  // comparison.json holds null where a difference could not be computed (read as NaN).
  if (!std::isfinite(d->mean)) return "n/a";
  if (!std::isfinite(d->ci_low) || !std::isfinite(d->ci_high)) return fmt::format("{:+.4f} [no interval]", d->mean);
  return fmt::format("{:+.4f} [{:+.4f}, {:+.4f}]{}", d->mean, d->ci_low, d->ci_high, d->significant ? " *" : "");
}

// The protocol the baselines were tuned under, and what each one's tuning chose.
std::string comparison_baselines(const Comparison& c) {
  std::string out;
  const bool seed = c.protocol == experiment::Protocol::Seed;
  if (c.protocol == experiment::Protocol::Quasirandom)
    out +=
        "<p>Quasirandom protocol: every method, the evolved genome included, tuned with the same number of quasi-random trials (a shifted "
        "Halton sequence) from its published search space, each at the full budget, chosen on the search tasks' validation split (and, "
        "below, on each workload's own).</p>";
  else
    out += seed ? "<p class=\"warn\">Seed protocol: the baselines got no schedule, no clipping and a coarse lr grid. This flatters the evolved "
                  "genome; use the default (strong) protocol before claiming a gain.</p>"
                : "<p>Strong protocol: every baseline tuned on validation over a fine lr grid × weight decay × {constant, the winner's schedule + "
                  "clipping}, with successive halving, chosen at the full budget.</p>";
  out += "<table><tr><th>baseline</th><th>chosen (validation)</th><th>val fitness</th><th>tuning runs</th></tr>";
  std::vector<Baseline> rows = c.baselines;
  if (c.evolved_tuning) rows.insert(rows.begin(), *c.evolved_tuning);
  for (const auto& b : rows) {
    std::string chosen = fmt::format("lr {:.3g}, weight decay {}, {}", b.lr,
                                     b.weight_decay > 0 ? fmt::format("{:g}", b.weight_decay) : std::string("off"), b.regime_text);
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(b.name), esc(chosen), f4(b.val_fitness), b.training_runs);
  }
  out += "</table>";
  return out;
}

// A horizon's table: test fitness mean ± std per method and group (`tasks`, then overall),
// with the paired difference evolved − this under every method but the first (the evolved).
std::string horizon_table(const std::vector<Method>& methods, const std::vector<std::string>& tasks, const std::vector<std::string>& groups) {
  std::string html = "<table><tr><th>method</th>";
  for (const auto& g : groups) html += "<th>" + esc(g) + "</th>";
  html += "</tr>";
  for (std::size_t m = 0; m < methods.size(); ++m) {
    html += "<tr><td>" + esc(methods[m].name) + "</td>";
    for (std::size_t t = 0; t <= tasks.size(); ++t) {
      if (t < tasks.size() && !methods[m].test.count(tasks[t])) {
        html += "<td>–</td>";
        continue;
      }
      const Stats& cell = t < tasks.size() ? methods[m].test.at(tasks[t]) : methods[m].overall;
      const std::string ppl = cell.perplexity ? fmt::format("<br>perplexity {:.2f}", *cell.perplexity) : std::string();
      html += fmt::format("<td>{} ± {}{}<br><span class=\"diff\">{}</span></td>", f4(cell.mean), f4(cell.std), ppl,
                          m == 0 ? "" : "evolved − this: " + diff_cell(cell.evolved_minus_this));
    }
    html += "</tr>";
  }
  html +=
      "</table><p class=\"note\">Paired differences per test seed (same seeds for every method) with a 95% t-interval; * = the interval "
      "excludes 0.</p>";
  return html;
}

// Bars and a table per horizon over `tasks`; chart ids are `id` + the steps beyond the first.
std::string horizon_blocks(const Run& r, const std::vector<Horizon>& horizons, const std::vector<std::string>& tasks, const std::string& id,
                           const std::string& what) {
  std::string html;
  int hi = 0;
  for (const auto& h : horizons) {
    const std::int64_t hs = h.steps;
    const auto& methods = h.methods;
    std::vector<std::string> names, groups;
    for (const auto& m : methods) names.push_back(m.name);
    for (const auto& t : tasks) groups.push_back(r.labels.count(t) ? r.labels.at(t) : t);
    groups.push_back("overall");
    std::vector<std::vector<BarValue>> vals(groups.size(), std::vector<BarValue>(names.size()));
    for (std::size_t m = 0; m < names.size(); ++m) {
      for (std::size_t t = 0; t < tasks.size(); ++t)
        if (methods[m].test.count(tasks[t])) vals[t][m] = mean_ci(methods[m].test.at(tasks[t]).values);
      vals.back()[m] = mean_ci(methods[m].overall.values);
    }
    const std::string label = hi == 0 ? " (search horizon)" : " (longer horizon)";
    html += fmt::format("<h3>{} steps{}{}</h3>", hs, label, what);
    html += bar_chart(hi == 0 ? id : fmt::format("{}-{}", id, hs), fmt::format("Test fitness at {} steps{}, mean and 95% CI over seeds", hs, what),
                      "test fitness", groups, names, vals);
    html += horizon_table(methods, tasks, groups);
    ++hi;
  }
  return html;
}

// The baseline the winner's training loss is drawn against: the attribution's (the strongest
// tuned baseline on validation) when there is one, else the baseline of the first horizon
// with the best validation fitness; empty when that horizon has no method but the evolved.
std::string strongest_baseline(const Comparison& c) {
  std::string strongest;
  if (!c.horizons.empty() && c.horizons[0].methods.size() > 1) {
    const auto& methods = c.horizons[0].methods;
    if (c.attribution_baseline) {
      strongest = *c.attribution_baseline + " (tuned)";  // the strongest tuned baseline on validation
    } else {
      double best = -2;
      for (std::size_t m = 1; m < methods.size(); ++m)
        if (methods[m].kind == experiment::MethodKind::Baseline && methods[m].val_fitness > best) {
          best = methods[m].val_fitness;
          strongest = methods[m].name;
        }
    }
  }
  return strongest;
}

// Where the gain over the strongest tuned baseline comes from, when the comparison measured it.
std::string attribution_block(const Comparison& c) {
  if (!c.attribution_baseline) return "";
  std::string out = fmt::format(
      "<h3>Where the gain comes from</h3><p>Against the strongest tuned baseline B = {} at {} steps, paired per test seed. A1 = the evolved rule "
      "in B's setting, A2 = B's rule in the evolved setting, each with its learning rate re-tuned on validation.</p>",
      esc(*c.attribution_baseline), c.attribution_steps);
  out += "<table><tr><th>part of the gain</th><th>difference</th><th>mean [95% CI]</th></tr>";
  for (const auto& row : c.attribution)
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(row.part), esc(row.difference), diff_cell(row.paired));
  out += "</table>";
  return out;
}

// Training loss of the winner against the strongest tuned baseline, per task (test runs).
std::string loss_curves_block(const Run& r, const Comparison& c, const std::string& strongest, std::int64_t steps) {
  if (!r.best || strongest.empty()) return "";
  std::string base_hash;
  for (const auto& m : c.horizons[0].methods)
    if (m.name == strongest) base_hash = m.hash;
  std::string out = fmt::format(
      "<h3>Training loss: the winner against {}</h3><p>Smoothed training loss, mean over the test seeds, at the search horizon.{}</p><div "
      "class=\"grid2\">",
      esc(strongest),
      base_hash.empty() ? fmt::format(" {} is not among the methods of the first horizon: the winner is drawn alone.", esc(strongest)) : "");
  for (const auto& t : r.ex.all_tasks()) {
    std::vector<Series> curves{loss_curve(r.journal, r.best->hash, t, steps, "evolved", false)};
    if (!base_hash.empty()) curves.push_back(loss_curve(r.journal, base_hash, t, steps, strongest, true));
    out += "<div>" + line_chart("loss-" + t, r.labels.at(t), "step", "training loss (smoothed)", curves) + "</div>";
  }
  out += "</div>";
  return out;
}

// Steps to the target per method and workload, and the performance profile as a chart.
std::string time_to_target_block(const Run& r, const experiment::TimeToTarget& tt) {
  std::string out = fmt::format(
      "<h3 id=\"time-to-target\">Time to target</h3><p>Steps each method needs for its validation score (mean over the fresh seeds, read "
      "every {} steps) to reach the target: {}'s score at the full budget of {} steps, per workload; – = not reached. The performance "
      "profile shows, for each τ, the share of workloads a method reaches within τ times the fastest method's steps (Dolan &amp; Moré "
      "2002, as MLCommons AlgoPerf scores).</p>",
      tt.every, esc(tt.target_method), tt.steps);
  out += "<table><tr><th>method</th>";
  for (const auto& w : tt.workloads) out += "<th>" + esc(r.labels.count(w) ? r.labels.at(w) : w) + "</th>";
  out += "</tr><tr><td>target (validation score)</td>";
  for (const auto& w : tt.workloads) out += "<td>" + f4(tt.target.at(w)) + "</td>";
  out += "</tr>";
  std::vector<Series> profile;
  for (const auto& m : tt.methods) {
    out += "<tr><td>" + esc(m) + "</td>";
    for (const auto& w : tt.workloads) {
      const auto& t = tt.reached.at(m).at(w);
      out += "<td>" + (t ? std::to_string(*t) : std::string("–")) + "</td>";
    }
    out += "</tr>";
    Series s{m, {}, false, false};
    for (int i = 0; i <= 60; ++i) {
      const double tau = 1.0 + 0.05 * i;
      s.points.emplace_back(tau, tt.profile(m, tau));
    }
    profile.push_back(s);
  }
  out += "</table>";
  out += line_chart("performance-profile", "Performance profile", "τ (steps ÷ the fastest method's)", "share of workloads", profile, {},
                    std::make_pair(0.0, 1.0));
  return out;
}
}  // namespace

std::string section_comparison(const Run& r, std::int64_t steps) {
  if (!r.comparison) {
    if (!r.ex.compare.enabled) return "<h2 id=\"comparison\">Comparison</h2><p class=\"note\">Not run (--no-compare).</p>";
    return "<h2 id=\"comparison\">Comparison</h2><p class=\"note\">Not run yet.</p>";
  }
  const Comparison& c = *r.comparison;
  std::string out = "<h2 id=\"comparison\">Comparison with tuned baselines</h2>";
  out += comparison_baselines(c);
  out += horizon_blocks(r, c.horizons, r.tasks, "test-bars", "");
  const std::string strongest = strongest_baseline(c);
  if (c.transfer_tasks) {
    out +=
        "<h3 id=\"transfer\">Transfer: tasks the search never saw</h3><p>Every method with the hyperparameters chosen on the search tasks (none "
        "re-tuned on these tasks), on their test splits with the same fresh seeds. Classification: fitness = accuracy; next-token tasks: fitness = "
        "exp(−loss) = 1/perplexity.</p>";
    out += horizon_blocks(r, c.transfer, *c.transfer_tasks, "transfer-bars", ", held-out tasks");
  }
  if (c.workload_tasks) {
    out +=
        "<h3 id=\"per-workload\">Tuned per workload</h3><p>Every method's trials chosen on each workload's own validation split, the held-out "
        "tasks included; each workload tested with its own choice, on the same fresh seeds.</p>";
    out += horizon_blocks(r, c.per_workload, *c.workload_tasks, "workload-bars", ", tuned per workload");
  }
  out += attribution_block(c);
  if (c.time_to_target) out += time_to_target_block(r, *c.time_to_target);
  out += loss_curves_block(r, c, strongest, steps);
  return out;
}

std::string section_provenance(const Run& r) {
  std::string out = "<h2 id=\"data\">Data</h2><table><tr><th>task</th><th>source</th><th>label</th></tr>";
  for (const auto& t : r.ex.all_tasks()) {
    const auto& [source, label] = r.data.at(t);
    const bool lossy = label.find("lossy") != std::string::npos || label.find("JPEG") != std::string::npos;
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}{}</td></tr>", esc(r.labels.at(t)), esc(source), esc(label),
                       lossy ? " <span class=\"warn\">lossy: JPEG-compressed images, not the official files; results differ from the official "
                               "dataset's</span>"
                             : "");
  }
  return out + "</table>";
}

}  // namespace evoopt::report
