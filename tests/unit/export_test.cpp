// `evoopt export` (issue 25) without the CLI: text from a run directory built to inject code
// (export_hostile_run.py) is data in every format, and the Python module imports under
// Debian's python3-torch (/usr/bin/python3) without running it and trains like
// GenomeOptimizer. The exports run against GenomeOptimizer for every preset and term, the
// headers the CLI exports at build time and the CLI's own checks:
// tests/integration/export_integration_test.cpp.
#include <cstdlib>
#include <fstream>
#include <utility>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/export/export.hpp"
#include "evoopt/optim/genome_optimizer.hpp"
#include "export_support.hpp"
#include "test_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;

namespace {
// What a line of documentation starts with in each format (the class docstring's indent in Python).
std::string doc_prefix(exports::Format f) {
  switch (f) {
    case exports::Format::PyTorch:
      return "    ";
    case exports::Format::Cpp:
      return "// ";
    case exports::Format::Latex:
      return "% ";
    case exports::Format::Markdown:
      return "- ";
  }
  return "";
}
}  // namespace

TEST(ExportSafety, AHostileRunDirectoryIsDataInEveryFormat) {
  test::TempDir tmp;
  const fs::path hostile = make_run(tmp / "hostile", false), benign = make_run(tmp / "benign", true);
  const auto hs = exports::load_export_source(hostile.string()), bs = exports::load_export_source(benign.string());
  EXPECT_EQ(hs.steps, 60);
  // A genome file whose name ends in a backslash and carries a directive: the same as any file.
  const fs::path odd_file = tmp / "g\"\"\"\n#error in a file name\\", plain_file = tmp / "g.json";
  fs::copy_file(kAllTermsDecoupled, odd_file);
  fs::copy_file(kAllTermsDecoupled, plain_file);
  const auto odd = exports::load_export_source(odd_file.string()), plain = exports::load_export_source(plain_file.string());
  EXPECT_EQ(plain.provenance.source, "genome file \"g.json\"");

  for (const auto f : {exports::Format::PyTorch, exports::Format::Cpp, exports::Format::Latex, exports::Format::Markdown}) {
    const std::string what = exports::format_name(f);
    for (const auto& [h, b] : {std::pair{&hs, &bs}, std::pair{&odd, &plain}}) {
      exports::ExportOptions oh, ob;
      oh.total_steps = ob.total_steps = 60;
      oh.class_name = ob.class_name = "ExportedHostile";
      oh.provenance = h->provenance;
      ob.provenance = b->provenance;
      const std::string ht = exports::export_genome(h->genome, f, oh), bt = exports::export_genome(b->genome, f, ob);
      // Line for line the benign export, except documentation lines that show the names.
      const auto hl = lines_of(ht), bl = lines_of(bt);
      ASSERT_EQ(hl.size(), bl.size()) << what << "\n" << ht;
      for (std::size_t i = 0; i < hl.size(); ++i)
        if (hl[i] != bl[i])
          EXPECT_TRUE(starts_with(hl[i], doc_prefix(f) + "Source: ") || starts_with(hl[i], doc_prefix(f) + "Test: ")) << what << ": " << hl[i];
      EXPECT_EQ(ht.find(tmp.path().string()), std::string::npos) << what << ": the export holds the absolute path";
      EXPECT_EQ(ht.find('\r'), std::string::npos) << what;
      EXPECT_EQ(ht.find("\xe2\x80\xae"), std::string::npos) << what << ": a bidirectional override got through";
      if (f == exports::Format::Cpp || f == exports::Format::PyTorch)  // a backslash-newline would splice the next line in
        for (const auto& l : hl) EXPECT_TRUE(l.empty() || l.back() != '\\') << what << ": a line ends in a backslash: " << l;
      if (f == exports::Format::Cpp) EXPECT_EQ(directives(ht), kHeaderDirectives) << ht;
      if (f == exports::Format::Markdown) EXPECT_EQ(ht.find('<'), std::string::npos) << ht;
    }
    // The names are still shown, as data.
    exports::ExportOptions o;
    o.total_steps = 60;
    o.provenance = hs.provenance;
    const std::string ht = exports::export_genome(hs.genome, f, o);
    for (const char* marker : {"pwned-run", "pwned-label", "pwned-task", "#error injected directive"})
      EXPECT_NE(ht.find(marker), std::string::npos) << what << ": " << marker << " missing\n" << ht;
  }

  // The Python module imports under real PyTorch without running what the names carry, holds
  // only the statements an export writes, and trains like GenomeOptimizer.
  exports::ExportOptions o;
  o.total_steps = 60;
  o.class_name = "ExportedHostile";
  o.provenance = hs.provenance;
  write_file_atomic(tmp / "ExportedHostile.py", exports::export_genome(hs.genome, exports::Format::PyTorch, o));
  const Problem p = make_problem(5);
  write_file_atomic(tmp / "data.json",
                    nlohmann::json{{"W0", tensor_json(p.w0)}, {"b0", tensor_json(p.b0)}, {"X", tensor_json(p.x)}, {"Y", tensor_json(p.y)}}.dump());
  const std::string cmd = "cd " + tmp.path().string() + " && /usr/bin/python3 " + std::string(EVOOPT_TEST_SOURCE_DIR) +
                          "/unit/export_hostile_check.py ExportedHostile.py ExportedHostile data.json out.json 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (const char* marker : {"pwned-run", "pwned-label", "pwned-task"}) EXPECT_FALSE(fs::exists(tmp / marker)) << marker;
  const auto j = nlohmann::json::parse(read_text_file(tmp / "out.json"));
  const auto reference = with_genome(p, genome::load_genome(kAllTermsDecoupled));
  expect_close({json_tensor(j.at("W")), json_tensor(j.at("b"))}, reference, "hostile run (PyTorch class)");
  EXPECT_TRUE(j.at("state_dict_resume_equal").get<bool>());
}
