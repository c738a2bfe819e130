#pragma once
// `evoopt report RUN_DIR`: the run as one self-contained HTML page (report.html) — inline
// SVG charts and CSS, MathML formulas, no scripts, fonts or network — built from the run
// directory's files alone, so it works on a finished run, an interrupted one, and one still
// going (`evoopt evolve` rewrites it after every generation and at the end).
//
// Every chart is an <svg class="chart" data-chart="NAME" data-points="N"> holding N marks
// of class "pt" (one per data point), so a test can check in the DOM that each chart holds
// its data.
#include <filesystem>
#include <string>

#include "evoopt/experiment/study.hpp"

namespace evoopt::report {

// The page. Throws evoopt::Error naming the file when `run_dir` is not a run directory or
// one of its files is invalid; files a run has not written yet are reported as such.
std::string render_report(const std::filesystem::path& run_dir);

// Writes RUN_DIR/report.html atomically; returns its path.
std::filesystem::path write_report(const std::filesystem::path& run_dir);

// `events` that also rewrite RUN_DIR/report.html whenever the study has written its outputs
// (after every generation, so a browser refresh follows the run, and at the end). A report
// that cannot be written is said through events.message, and the study goes on.
experiment::StudyEvents with_live_report(experiment::StudyEvents events);

// MathML for the LaTeX subset evoopt's formulas use (export::latex_update and
// latex_definitions): groups, ^ _, \frac \tfrac \sqrt \hat \operatorname \text \left \right,
// Greek letters, operators and spacing. Throws evoopt::Error on anything else.
std::string latex_to_mathml(const std::string& latex, bool display = true);

}  // namespace evoopt::report
