#pragma once
// Reading the PyTorch fixtures (tests/fixtures/*.json, made by the make_*_fixtures.py scripts
// there): one loader, so a change to where or how the fixtures are stored is made once.
#include <catch2/catch.hpp>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace gg::test {

// tests/fixtures/<file>, parsed once per file for the whole test binary. A missing or unreadable
// file fails the test that asks for it.
inline const nlohmann::json& fixture(const std::string& file) {
  static std::mutex mutex;
  static std::map<std::string, nlohmann::json> parsed;  // (map nodes do not move)
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = parsed.find(file);
  if (it == parsed.end()) {
    std::ifstream in(std::string(GG_FIXTURE_DIR) + "/" + file);
    INFO("fixture file " << file);
    REQUIRE(in.good());
    it = parsed.emplace(file, nlohmann::json::parse(in)).first;
  }
  return it->second;
}

// A fixture number. JSON has no NaN or infinities, so the scripts write them as the strings
// "nan", "inf" and "-inf".
inline double number(const nlohmann::json& v) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    return s == "inf" ? std::numeric_limits<double>::infinity()
                      : -std::numeric_limits<double>::infinity();
  }
  return v.get<double>();
}

}  // namespace gg::test
