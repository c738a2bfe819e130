// The typed JSON reader (common/json_io) behind every run-directory file `evoopt report` and
// `evoopt status` read (issue 25, items 8 and 9): duplicate keys, parse errors and depth, and
// typed access name the file, the key and the value. Those files damaged in a real run
// directory, through the library and the CLI: tests/integration/run_dir_errors_integration_test.cpp.
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/json_io.hpp"
#include "test_support.hpp"

using namespace evoopt;
using nlohmann::json;

namespace {
using test::error_of;
}  // namespace

TEST(JsonIo, DuplicateKeysAreRefusedAtAnyDepthNamingTheKey) {
  EXPECT_EQ(error_of([] { parse_json(R"({"a": 1, "a": 1})", "F.json"); }), "F.json: /a: duplicate key");
  EXPECT_EQ(error_of([] { parse_json(R"({"a": {"b": [{"c": 1}, {"d": 1, "c": 2, "d": 3}]}})", "F.json"); }), "F.json: /a/b/1/d: duplicate key");
  EXPECT_EQ(error_of([] { parse_json(R"({"a/b": {"~": 1, "~": 2}})", "F.json"); }), "F.json: /a~1b/~0: duplicate key");
  // The same key in sibling objects is no duplicate; nor are equal array elements.
  EXPECT_EQ(parse_json(R"([{"a": 1}, {"a": 1}, [1, 1]])", "F.json").dump(), R"([{"a":1},{"a":1},[1,1]])");
  EXPECT_EQ(parse_json(R"({"a": {"x": 1}, "b": {"x": 2}})", "F.json").dump(), R"({"a":{"x":1},"b":{"x":2}})");
}

TEST(JsonIo, ParseErrorsAndDepthNameTheFileAndWhereTheyStopped) {
  const std::string cut = error_of([] { parse_json(R"({"a": [1, {"b": tru)", "F.json"); });
  EXPECT_EQ(cut.rfind("F.json: malformed JSON near /a/1/b (parse error at line 1, column ", 0), 0u) << cut;
  EXPECT_EQ(cut.find("json.exception"), std::string::npos) << cut;
  EXPECT_EQ(error_of([] { parse_json(std::string(257, '[') + std::string(257, ']'), "F.json"); }), "F.json: JSON nested deeper than 256 levels");
  EXPECT_NO_THROW(parse_json(std::string(256, '[') + std::string(256, ']'), "F.json"));
  EXPECT_EQ(error_of([] { parse_json("{} {}", "F.json"); }).rfind("F.json: malformed JSON (parse error at line 1, column 4", 0), 0u);
  EXPECT_EQ(error_of([] { parse_json("{\"a\": \"x\ny\"}", "F.json"); }).find('\n'), std::string::npos);  // one line
}

TEST(JsonIo, TypedAccessNamesTheFileTheKeyAndTheValue) {
  const JsonView j = parse_json_view(R"({"t": {"mean": "x", "n": 4294967298, "k": -1, "v": [1, 2.5, null], "ok": true},
                                        "long": "a\nb and a tail that goes on and on and on and on"})",
                                     "RUN/summary.json");
  EXPECT_EQ(error_of([&] { j.at("t").get<double>("mean"); }), "RUN/summary.json: /t/mean: expected a number, got a string \"x\"");
  EXPECT_EQ(error_of([&] { j.at("t").at("absent"); }), "RUN/summary.json: /t/absent: missing");
  EXPECT_EQ(error_of([&] { j.at("t").get<int>("n"); }),
            "RUN/summary.json: /t/n: expected an integer in [-2147483648, 2147483647], got an integer 4294967298");
  EXPECT_EQ(j.at("t").get<std::int64_t>("n"), 4294967298);
  EXPECT_EQ(error_of([&] { j.at("t").get<std::uint64_t>("k"); }),
            "RUN/summary.json: /t/k: expected an integer in [0, 18446744073709551615], got an integer -1");
  EXPECT_EQ(error_of([&] { j.at("t").get_in<std::int64_t>("n", 0, 100); }),
            "RUN/summary.json: /t/n: expected an integer in [0, 100], got an integer 4294967298");
  EXPECT_EQ(error_of([&] { j.at("t").get<std::vector<double>>("v"); }), "RUN/summary.json: /t/v/2: expected a number, got null");
  EXPECT_EQ(error_of([&] { j.at("t").get<std::vector<int>>("v"); }),
            "RUN/summary.json: /t/v/1: expected an integer in [-2147483648, 2147483647], got a number 2.5");
  EXPECT_EQ(j.at("t").at("v").at(2).get<std::optional<double>>(), std::nullopt);
  EXPECT_EQ(error_of([&] { j.at("t").at("v").at(3); }), "RUN/summary.json: /t/v/3: missing (the array has 3 elements)");
  EXPECT_EQ(error_of([&] { j.at("t").at("ok").at("x"); }), "RUN/summary.json: /t/ok: expected an object, got true");
  EXPECT_EQ(j.at("t").get_or<std::string>("absent", "d"), "d");
  EXPECT_EQ(error_of([&] { j.at("t").get_or<std::string>("ok", "d"); }), "RUN/summary.json: /t/ok: expected a string, got true");
  const std::string longer = error_of([&] { j.get<int>("long"); });
  EXPECT_EQ(longer.find('\n'), std::string::npos) << longer;
  EXPECT_LT(longer.size(), 140u) << longer;
}

TEST(JsonIo, ConvertLocatesTheErrorsOfCodeThatReadsPlainJson) {
  const JsonView j = parse_json_view(R"({"ga": {"population": "3", "sizes": [1, "2"]}})", "RUN/config.json");
  auto population = [](const json& g) { return g.at("population").get<int>(); };
  EXPECT_EQ(error_of([&] { j.at("ga").convert(population); }), "RUN/config.json: /ga/population: expected a number, got a string \"3\"");
  EXPECT_EQ(error_of([&] { j.at("ga").convert([](const json& g) { return g.at("size").get<int>(); }); }), "RUN/config.json: /ga/size: missing");
  EXPECT_EQ(error_of([&] { j.at("ga").convert([](const json& g) { return g.at("sizes").get<std::vector<int>>(); }); }),
            "RUN/config.json: /ga/sizes/1: expected a number, got a string \"2\"");
  EXPECT_EQ(error_of([&] { j.at("ga").convert([](const json&) -> int { throw Error("population must be >= 2"); }); }),
            "RUN/config.json: /ga: population must be >= 2");
  // An error already located passes unchanged.
  EXPECT_EQ(error_of([&] { j.convert([&](const json&) { return j.at("ga").get<int>("population"); }); }),
            "RUN/config.json: /ga/population: expected an integer in [-2147483648, 2147483647], got a string \"3\"");
}
