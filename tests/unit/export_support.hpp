#pragma once
// Helpers of the export tests (unit/export_test.cpp, integration/export_integration_test.cpp):
// a small float64 problem trained 60 steps by an optimizer, tensors as JSON for Python, the
// run directories export_hostile_run.py makes, and the directives of a generated header.
// File-local (an unnamed namespace) in each test file that includes it.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "evoopt/genome/genome.hpp"
#include "evoopt/optim/genome_optimizer.hpp"

namespace {
constexpr std::int64_t kSteps = 60;

struct Problem {
  torch::Tensor w0, b0, x, y;  // float64: (5, 3), (3), (steps, 8, 5), (steps, 8, 3)
};

Problem make_problem(std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  Problem p;
  p.w0 = torch::randn({5, 3}, gen, f64) * 0.5;
  p.b0 = torch::randn({3}, gen, f64) * 0.1;
  p.x = torch::randn({kSteps, 8, 5}, gen, f64);
  p.y = torch::tanh(torch::randn({kSteps, 8, 3}, gen, f64));
  return p;
}

nlohmann::json tensor_json(const torch::Tensor& t) {
  if (t.dim() == 0) return t.item<double>();
  nlohmann::json a = nlohmann::json::array();
  for (std::int64_t i = 0; i < t.size(0); ++i) a.push_back(tensor_json(t[i]));
  return a;
}

torch::Tensor json_tensor(const nlohmann::json& j) {
  std::vector<double> flat;
  std::vector<std::int64_t> shape;
  const nlohmann::json* cur = &j;
  while (cur->is_array()) {
    shape.push_back(static_cast<std::int64_t>(cur->size()));
    cur = &cur->at(0);
  }
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& v) {
    if (v.is_array())
      for (const auto& e : v) walk(e);
    else
      flat.push_back(v.get<double>());
  };
  walk(j);
  return torch::tensor(flat, torch::kFloat64).view(shape);
}

// Trains W, b with `make_opt(params)`; returns the final parameters.
template <typename MakeOpt>
std::pair<torch::Tensor, torch::Tensor> train(const Problem& p, MakeOpt make_opt) {
  auto w = p.w0.clone().requires_grad_(true);
  auto b = p.b0.clone().requires_grad_(true);
  auto opt = make_opt(std::vector<torch::Tensor>{w, b});
  for (std::int64_t k = 0; k < kSteps; ++k) {
    opt->zero_grad();
    auto loss = (torch::tanh(torch::matmul(p.x[k], w) + b) - p.y[k]).pow(2).mean();
    loss.backward();
    opt->step();
  }
  return {w.detach(), b.detach()};
}

std::pair<torch::Tensor, torch::Tensor> with_genome(const Problem& p, const evoopt::genome::Genome& g) {
  return train(p, [&](std::vector<torch::Tensor> params) {
    return std::make_unique<evoopt::optim::GenomeOptimizer>(params, evoopt::optim::GenomeOptimizerOptions(g, kSteps));
  });
}

void expect_close(const std::pair<torch::Tensor, torch::Tensor>& a, const std::pair<torch::Tensor, torch::Tensor>& b, const std::string& what) {
  const double dw = (a.first - b.first).abs().max().item<double>(), db = (a.second - b.second).abs().max().item<double>();
  EXPECT_LT(dw, 1e-9) << what;
  EXPECT_LT(db, 1e-9) << what;
}

const std::string kAllTermsDecoupled = std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_genomes/all_terms_decoupled.json";

// A run directory made by export_hostile_run.py in `dir` (hostile, or the same layout benign).
std::filesystem::path make_run(const std::filesystem::path& dir, bool benign) {
  std::filesystem::create_directories(dir);
  const std::string cmd = "/usr/bin/python3 " + std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_hostile_run.py make " + dir.string() + " " +
                          kAllTermsDecoupled + (benign ? " --benign" : "");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::vector<std::filesystem::path> runs;
  for (const auto& e : std::filesystem::directory_iterator(dir)) runs.push_back(e.path());
  EXPECT_EQ(runs.size(), 1U) << dir;
  return runs.empty() ? dir : runs.front();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// The lines of a C++ header that the preprocessor reads as directives.
std::vector<std::string> directives(const std::string& header) {
  std::vector<std::string> out;
  for (const auto& l : lines_of(header)) {
    const auto first = l.find_first_not_of(" \t");
    if (first != std::string::npos && l[first] == '#') out.push_back(l.substr(first));
  }
  return out;
}

const std::vector<std::string> kHeaderDirectives = {"#pragma once",         "#include <torch/torch.h>", "#include <algorithm>", "#include <cmath>",
                                                    "#include <cstdint>",   "#include <map>",           "#include <memory>",    "#include <optional>",
                                                    "#include <stdexcept>", "#include <utility>",       "#include <vector>"};
}  // namespace
