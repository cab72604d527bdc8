#pragma once
// Command-line parsing for the tools' and examples' mains, with one exit-status rule: 0 after
// --help, 2 for bad usage (CLI11's own codes, 100 and up, are not used), never an exception.
#include <CLI/CLI.hpp>
#include <optional>

namespace gg::cli {

inline constexpr int kExitUsage = 2;

// Parses argv into `app`. Returns the status main should exit with (--help, or a parse error,
// which CLI11 has printed), or nullopt to go on.
inline std::optional<int> parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help and the like
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace gg::cli
