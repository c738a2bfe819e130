#pragma once
// A discovered optimizer in the user's own code: `evoopt export` writes a genome as a
// standalone PyTorch optimizer (one .py file, depending only on torch), a header-only
// libtorch optimizer, or its update rule as LaTeX / Markdown formulas. Each implements
// exactly what optim::GenomeOptimizer does (terms from genome/term.hpp's registry, bias
// correction, L2 or decoupled weight decay, warmup + cosine over total steps, clipping);
// tests train the same model from the same weights on the same batches with all of them.
//
// Text from outside (the run directory's name, task names and labels from summary.json)
// is data in every export: written on one line, with control characters, invalid UTF-8
// and bidirectional overrides escaped, quoted, and escaped again for where it goes (a
// Python docstring, a C++ or LaTeX comment, Markdown); no absolute path is written.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "evoopt/genome/genome.hpp"

namespace evoopt::exports {

enum class Format { PyTorch, Cpp, Latex, Markdown };
Format format_from_name(const std::string& name);  // pytorch | cpp | latex | markdown; throws evoopt::Error
const char* format_name(Format f);

// Where a genome came from, written into the export's documentation (escaped for each
// format by export_genome). Names from outside are quoted C-style in it.
struct Provenance {
  std::string source;                        // evoopt preset adam | genome file "g.json" | run "x" (best_genome.json)
  std::optional<double> validation_fitness;  // mean validation accuracy over the search tasks
  std::string test_result;  // e.g. mean accuracy 0.7391 ± 0.0041 over 3 fresh seeds on the test split ("CIFAR-10" 0.7391), 800 steps
};

struct ExportOptions {
  std::int64_t total_steps = 0;  // the schedule's horizon (the class's default); needed when the genome has a schedule
  Provenance provenance;
  std::string class_name = "EvolvedOptimizer";
};

// The export's text. Throws evoopt::Error when the genome is invalid, or has a schedule and
// no total_steps, or class_name cannot name the class in the format's language: not an
// ASCII identifier, longer than 200 characters, a keyword (Python's, soft ones included;
// C++'s, alternative tokens and final/override/import/module included), reserved (a
// Python __special__ name; in C++ a leading underscore or a double underscore), a
// standard C/C++ macro or libtorch namespace, or a name the generated file itself uses
// (torch, math, int, std, Optimizer, ...). LaTeX and Markdown need an identifier only.
std::string export_genome(const genome::Genome& genome, Format format, const ExportOptions& options);

// The update rule as one LaTeX formula, and the definitions it reads (gradient, clipping,
// moments, the schedule over `total_steps`), one formula each; what the latex/markdown
// exports and the HTML report (report/report.hpp) show.
std::string latex_update(const genome::Genome& genome);
std::vector<std::string> latex_definitions(const genome::Genome& genome, std::int64_t total_steps);

// A genome to export: a preset name, a genome JSON file, or a run directory (its
// best_genome.json, with the run's steps from config.json, validation fitness and final
// test from summary.json as provenance). Every value read from a run directory is checked
// first; an error is one line naming the file and the key
// ("RUN/summary.json: key final_test.overall_mean: expected a number, got a string").
struct ExportSource {
  genome::Genome genome;
  Provenance provenance;
  std::int64_t steps = 0;  // the run's training steps (0: not a run)
};
ExportSource load_export_source(const std::string& genome_or_run_dir);

}  // namespace evoopt::exports
