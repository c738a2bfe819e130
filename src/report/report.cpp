// The page: the parts (parts.hpp) put together with the run's status and the style sheet.
#include "evoopt/report/report.hpp"

#include <chrono>
#include <ctime>
#include <string>

#include <fmt/format.h>

#include "evoopt/common/run_dir.hpp"
#include "evoopt/experiment/progress.hpp"
#include "evoopt/experiment/study.hpp"
#include "evoopt/report/parts.hpp"

namespace evoopt::report {
namespace fs = std::filesystem;

namespace {

const char* kStyle = R"CSS(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;max-width:1100px;margin:0 auto;padding:16px 20px;color:#222;background:#fff;line-height:1.45}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
.note{color:#666;font-size:.9em}.warn{color:#a4000f}.diff{color:#555;font-size:.85em}.status{background:#f4f7fb;border:1px solid #d8e0ea;padding:8px 12px}
svg.chart{max-width:100%;height:auto;display:block;margin:.6em 0}svg.chart.wide{max-width:none}svg text{font-size:11px;fill:#333}svg .title{font-size:13px;font-weight:600}
svg .ytick{text-anchor:end}svg .xtick{text-anchor:middle}svg .xlabel{text-anchor:middle}svg .ylabel{text-anchor:middle}
svg .grid{stroke:#eee}svg .axis{stroke:#999}svg .band{fill:#1f77b4;fill-opacity:.15;stroke:none}svg .err{stroke:#222;stroke-width:1.2}
svg .edge{stroke:#bbb;stroke-width:1.2}svg .nodelabel{font-size:10px}svg .nodesub{font-size:9px;fill:#777}
.formula math{font-size:1.3em;margin:.5em 0}.defs math{margin:.3em 0}.cols{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:8px}.scroll{overflow-x:auto}
.key{margin-right:12px;white-space:nowrap}.dot{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}
nav a{margin-right:12px}code{background:#f4f4f4;padding:1px 4px}
)CSS";

}  // namespace

std::string render_report(const fs::path& run_dir) {
  const Run r = read_run(run_dir);
  const auto& ex = r.ex;
  const auto& st = r.status;
  std::string tasks;
  for (const auto& t : r.tasks) tasks += (tasks.empty() ? "" : ", ") + r.labels.at(t);
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  std::string status =
      fmt::format("<b>{}</b>: {} of {} generations finished", esc(experiment::run_state_name(st.state)), st.generations_done, st.generations);
  if (st.best_fitness)
    status += fmt::format("; best validation fitness so far {:.4f} (#{}, generation {})", *st.best_fitness, st.best_id, st.best_generation);
  if (st.state != experiment::RunState::Complete && st.eta_seconds) status += "; ETA about " + experiment::format_duration(*st.eta_seconds);
  if (st.final_test) status += fmt::format("; the winner's final test fitness {:.4f}", *st.final_test);
  std::string html =
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
  html += "<title>evoopt report: " + esc(run_dir.filename().string().empty() ? run_dir.string() : run_dir.filename().string()) + "</title>";
  html += "<style>" + std::string(kStyle) + "</style></head><body>";
  html += "<h1>evoopt report: " + esc(run_dir.string()) + "</h1>";
  html += fmt::format(
      "<p class=\"status\">{}.<br>Preset {}, model {}, {} steps per run, population {}, seed {}; tasks {}. Written {} from the run's files{}.</p>",
      status, esc(ex.preset), esc(ex.model), ex.steps, ex.ga.population, ex.seed, esc(tasks), when,
      st.state == experiment::RunState::Complete ? "" : " (evoopt evolve rewrites it after every generation: reload to follow the run)");
  html +=
      "<nav><a href=\"#search\">search</a><a href=\"#winner\">winner</a><a href=\"#tree\">family tree</a><a href=\"#test\">final test</a><a "
      "href=\"#comparison\">comparison</a><a href=\"#data\">data</a></nav>";
  html += section_search(r);
  html += section_winner(r, ex.steps);
  html += section_tree(r);
  html += section_final(r);
  html += section_comparison(r, ex.steps);
  html += section_provenance(r);
  html += "<p class=\"note\">Made by evoopt " + esc(r.evoopt_version) + "; one self-contained file (no scripts, fonts or network).</p>";
  html += "</body></html>\n";
  return html;
}

fs::path write_report(const fs::path& run_dir) {
  const std::string html = render_report(run_dir);
  const RunDirectory dir(run_dir);
  dir.write_text(run_files::kReport, html);
  return dir / run_files::kReport;
}

experiment::StudyEvents with_live_report(experiment::StudyEvents events) {
  auto before = events.outputs_written;
  auto say = events.message;
  events.outputs_written = [before, say](const std::filesystem::path& run_dir) {
    if (before) before(run_dir);
    try {
      write_report(run_dir);
    } catch (const std::exception& e) {
      if (say) say(std::string("report.html not written: ") + e.what());
    }
  };
  return events;
}

}  // namespace evoopt::report
