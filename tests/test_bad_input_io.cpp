// Bad input at the library's edges that the catalogue's table does not reach: checkpoint files
// that nest JSON deeply, carry huge strings, are not regular files, or names that are not UTF-8;
// temporaries left by killed saves; randint ranges at the int64 limits and beyond the dtype; and
// Module::to with an integer dtype. Each test failed (or crashed, or hung) before its fix.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
#include <thread>

#include "groupgrad.hpp"
#include "tests/test_support.hpp"

using namespace gg;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

struct TempDir : gg::test::TempDir {
  TempDir() : gg::test::TempDir("gg_bad_input_io") {}
};

// A safetensors file with this header text and `data_bytes` zero bytes of data.
void write_header(const std::string& path, const std::string& header, size_t data_bytes = 0) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << std::string(data_bytes, '\0');
}

std::string nested(const std::string& open, const std::string& inner, const std::string& close,
                   int depth) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += open;
  s += inner;
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

using gg::test::outcome;  // the gg::Error message of a call, or what happened instead

// The gg::Error message of call(); fails the test on any other outcome.
std::string error_of(const std::function<void()>& call) {
  const std::string what = outcome(call);
  if (what.rfind("<", 0) == 0) FAIL(what);
  return what;
}

}  // namespace

TEST_CASE("io: headers nesting JSON deeper than safetensors needs are refused, not recursed into",
          "[catalogue][io][serialization]") {
  TempDir dir;
  const std::string p = dir.file("deep.safetensors");
  const int depth = 150'000;  // ~300 KB of brackets: a recursive dump() overflowed the stack
  const std::string rule = "the header nests arrays or objects deeper than 8 levels";
  for (const std::string& header :
       {R"({"t":{"dtype":"F32","shape":)" + nested("[", "", "]", depth) +
            R"(,"data_offsets":[0,0]}})",
        R"({"t":{"dtype":)" + nested("[", "\"F32\"", "]", depth) +
            R"(,"shape":[0],"data_offsets":[0,0]}})",
        R"({"t":{"dtype":"F32","shape":[0],"data_offsets":)" + nested("[", "0", "]", depth) + "}}",
        R"({"__metadata__":{"k":)" + nested(R"({"a":)", "1", "}", depth) + "}}"}) {
    write_header(p, header);
    CHECK_THROWS_WITH(safetensors::read(p), Contains("[safetensors] " + p) && Contains(rule));
    CHECK_THROWS_WITH(safetensors::read_metadata(p), Contains(rule));
    nn::Linear lin(2, 2);
    CHECK_THROWS_WITH(load(lin, p), Contains(rule));
  }
  // Nine levels is one too many; the deepest valid header (3 levels) still loads.
  write_header(p, R"({"t":{"dtype":"F32","shape":[[[[[[[0]]]]]]],"data_offsets":[0,0]}})");
  CHECK_THROWS_WITH(safetensors::read(p), Contains(rule));
  write_header(p, R"({"t":{"dtype":"F32","shape":[[[[[[0]]]]]],"data_offsets":[0,0]}})");
  CHECK_THROWS_WITH(safetensors::read(p),
                    Contains("tensor 't' has an invalid shape [[[[[[0]]]]]]"));
}

TEST_CASE("io: messages show at most a bounded excerpt of the file's JSON and names",
          "[catalogue][io][serialization]") {
  TempDir dir;
  const std::string p = dir.file("big.safetensors");
  const std::string long_text(1'000'000, 'x');
  std::string long_shape = "[-1";
  for (int i = 0; i < 200'000; ++i) long_shape += ",7";
  long_shape += "]";
  struct Case {
    std::string header, expect;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"t":{"dtype":"F32","shape":)" + long_shape + R"(,"data_offsets":[0,0]}})",
            "has 200001 dimensions (at most 16)"},
           {R"({"t":{"dtype":"F32","shape":[1,")" + long_text + R"(",2],"data_offsets":[0,0]}})",
            R"(tensor 't' has an invalid shape [1,"xxxxx)"},
           {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":)" + long_shape + "}}",
            "tensor 't' has invalid data_offsets [-1,7,7,7"},
           {R"({"t":{"dtype":")" + long_text + R"(","shape":[0],"data_offsets":[0,0]}})",
            "has unknown dtype 'xxxxx"},
           {R"({")" + long_text + R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,1]}})",
            "(1000000 bytes)"},
           {R"({"__metadata__":{"k":)" + long_shape + "}}",
            "__metadata__ entry 'k' is not a string: [-1,7"},
           {R"({"t": ")" + long_text, "the header is not valid JSON"},
       }) {
    write_header(p, c.header);
    const std::string message = error_of([&] { (void)safetensors::read(p); });
    CHECK_THAT(message, Contains(c.expect));
    CHECK(message.size() < 600 + p.size());
  }
  // Unexpected keys of a load are listed by name, a sample of them when there are many.
  std::string header = "{";
  for (int i = 0; i < 1000; ++i)
    header += fmt::format(R"({}"extra{}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})",
                          i ? "," : "", i);
  write_header(p, header + "}");
  nn::Linear lin(2, 2);
  const std::string message = error_of([&] { load(lin, p); });
  CHECK_THAT(message, Contains("missing keys: [weight, bias]") &&
                          Contains("unexpected keys: [extra") && Contains("... (1000 in all)"));
  CHECK(message.size() < 1200 + p.size());
}

TEST_CASE("io: names and metadata that are not UTF-8 are refused before anything is written",
          "[catalogue][io][serialization]") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  nn::Linear lin(2, 3);
  save(lin, path, {{"note", "kept"}});
  const auto before = names_in(dir.path);
  const std::string rule = "is not valid UTF-8";

  CHECK_THROWS_WITH(save(lin, path, {{"file", "caf\xe9.txt"}}),
                    Contains("[save] " + path) &&
                        Contains(R"(the metadata value of 'file' 'caf\xe9.txt' is not valid UTF-8 )"
                                 R"((byte 0xe9 at offset 3))"));
  CHECK_THROWS_WITH(save(lin, path, {{"caf\xe9", "x"}}),
                    Contains(R"(the metadata key 'caf\xe9')") && Contains(rule));
  CHECK_THROWS_WITH(
      safetensors::write(path, {{"w\xff", ones({1})}}),
      Contains("[save] " + path) && Contains(R"(the tensor name 'w\xff')") && Contains(rule));
  // The forms nlohmann::json refuses too: overlong, surrogate, above U+10FFFF, truncated.
  for (const std::string bad :
       {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ab\xe2\x82", "\x80"})
    CHECK_THROWS_WITH(save(lin, path, {{"k", bad}}), Contains(rule));

  optim::SGD sgd(lin.parameters(), optim::SGDOptions(0.1).momentum(0.9));
  CHECK_THROWS_WITH(save_optimizer(sgd, path, {{"k", "caf\xe9"}}),
                    Contains("[save_optimizer] " + path) && Contains(rule));
  CHECK(names_in(dir.path) == before);  // no temporary file, the checkpoint untouched
  CHECK(safetensors::read_metadata(path).at("note") == "kept");

  // Valid UTF-8 of every length is written and read back as it was.
  const Metadata ok = {
      {"caf\xc3\xa9", "\xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf \xf4\x8f\xbf\xbf"}};
  save(lin, path, ok);
  CHECK(safetensors::read_metadata(path) == ok);
}

TEST_CASE("io: loading a FIFO, a directory or a device is an error, not a hang",
          "[catalogue][io][serialization]") {
  TempDir dir;
  const std::string fifo = dir.file("pipe.safetensors");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  nn::Linear lin(2, 2);
  for (const auto& call : std::vector<std::function<void()>>{
           [&] { load(lin, fifo); }, [&] { (void)safetensors::read(fifo); },
           [&] { (void)safetensors::read_metadata(fifo); }}) {
    auto result = std::async(std::launch::async, [&] { return outcome(call); });
    if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      // Blocked in open(): a writer unblocks it (and the test fails).
      const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      if (w >= 0) ::close(w);
      FAIL("reading a FIFO blocked");
    }
    CHECK_THAT(result.get(),
               Contains("[safetensors] " + fifo) && Contains("not a regular file (it is a FIFO)"));
  }
  CHECK_THROWS_WITH(load(lin, dir.path.string()),
                    Contains("not a regular file (it is a directory)"));
  CHECK_THROWS_WITH(
      load(lin, "/dev/null"),
      Contains("[safetensors] /dev/null: not a regular file (it is a character device)"));
  CHECK_THROWS_WITH(load(lin, dir.file("absent")), Contains("cannot open the file"));
}

TEST_CASE("io: a save removes the temporaries that killed saves to the same target left",
          "[catalogue][io][serialization]") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  auto create = [&](const std::string& name) { std::ofstream(dir.file(name)) << "partial"; };
  // Stale: the pattern of this target's temporaries, regular files, nobody writing them.
  create(".m.safetensors.tmp.12345.0");
  create(".m.safetensors.tmp.99.17");
  // Not ours to remove: other targets' temporaries, other names, a link, a directory, and a
  // temporary a live save holds locked.
  create(".other.safetensors.tmp.12345.0");
  create(".m.safetensors.tmp.12345");
  create(".m.safetensors.tmp.x.0");
  create("m.safetensors.tmp.1.0");
  create(".m.safetensors.tmp.1.0.bak");
  create("target_of_link");
  fs::create_symlink(dir.file("target_of_link"), dir.file(".m.safetensors.tmp.5.5"));
  fs::create_directory(dir.file(".m.safetensors.tmp.6.6"));
  create(".m.safetensors.tmp.7.7");
  const int live = ::open(dir.file(".m.safetensors.tmp.7.7").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(live >= 0);
  REQUIRE(::flock(live, LOCK_EX) == 0);

  nn::Linear lin(2, 2);
  save(lin, path);
  CHECK(names_in(dir.path) ==
        std::vector<std::string>{".m.safetensors.tmp.1.0.bak", ".m.safetensors.tmp.12345",
                                 ".m.safetensors.tmp.5.5", ".m.safetensors.tmp.6.6",
                                 ".m.safetensors.tmp.7.7", ".m.safetensors.tmp.x.0",
                                 ".other.safetensors.tmp.12345.0", "m.safetensors",
                                 "m.safetensors.tmp.1.0", "target_of_link"});
  ::close(live);  // the "writer" is gone: its file is stale now
  save(lin, path);
  CHECK(!fs::exists(dir.file(".m.safetensors.tmp.7.7")));
  CHECK(fs::exists(dir.file("target_of_link")));  // a link is removed never, nor its target

  // A save killed midway (SIGKILL while writing) leaves its temporary; the next save removes it.
  nn::Linear big(512, 512);  // 1 MB: a save takes long enough to be killed inside it
  for (int i = 0; i < 3; ++i) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      std::thread([] {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        ::kill(::getpid(), SIGKILL);
      }).detach();
      for (;;) save(big, path);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(WIFSIGNALED(status));
  }
  save(lin, path);
  for (const std::string& name : names_in(dir.path))
    CHECK((name.rfind(".m.safetensors.tmp.", 0) != 0 || name == ".m.safetensors.tmp.1.0.bak" ||
           name == ".m.safetensors.tmp.12345" || name == ".m.safetensors.tmp.5.5" ||
           name == ".m.safetensors.tmp.6.6" || name == ".m.safetensors.tmp.x.0"));
  nn::Linear back(2, 2);
  load(back, path);
}

TEST_CASE("io: randint uses integer arithmetic, unbiased, at the int64 limits",
          "[catalogue][io][random]") {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  manual_seed(3);
  // high is excluded: a double rounds INT64_MAX - 10 .. INT64_MAX - 1 up to 2^63.
  std::vector<int64_t> top = randint(kMax - 10, kMax, {4096}).to_vector<int64_t>();
  std::vector<int64_t> seen;
  for (int64_t v : top) {
    CHECK(v >= kMax - 10);
    CHECK(v < kMax);
    if (std::find(seen.begin(), seen.end(), v) == seen.end()) seen.push_back(v);
  }
  CHECK(seen.size() == 10);
  for (int64_t v : randint(kMin, kMin + 3, {1000}).to_vector<int64_t>()) CHECK(v < kMin + 3);
  (void)randint(kMin, kMax, {100});  // the widest range: 2^64 - 1 values
  // Range 3 * 2^62: a plain `draw % range` puts half the draws in the first third.
  const int64_t third = int64_t{1} << 62;
  int64_t low_third = 0;
  const std::vector<int64_t> wide =
      randint(kMin, kMin + third + third + third, {6000}).to_vector<int64_t>();
  for (int64_t v : wide) low_third += v < kMin + third ? 1 : 0;
  CHECK(low_third > 1700);
  CHECK(low_third < 2300);
}

TEST_CASE("io: randint refuses a range its dtype cannot hold, as PyTorch does",
          "[catalogue][io][random]") {
  CHECK_THROWS_WITH(
      randint(0, 1000, {256}, kInt8),
      Contains("[randint] the range [0, 1000) does not fit int8") && Contains("-128 to 127"));
  CHECK_THROWS_WITH(randint(-129, 0, {2}, kInt8), Contains("[randint] the range [-129, 0)"));
  CHECK_THROWS_WITH(randint(-1, (int64_t{1} << 31) + 1, {2}, kInt32),
                    Contains("does not fit int32"));
  CHECK_THROWS_WITH(randint(0, (int64_t{1} << 24) + 2, {2}, kFloat32),
                    Contains("does not fit float32") && Contains("-16777216 to 16777216"));
  CHECK_THROWS_WITH(randint(-258, 0, {2}, kBFloat16), Contains("does not fit bfloat16"));
  // The edges that fit, all values hit.
  std::vector<int8_t> i8 = randint(-128, 128, {4096}, kInt8).to_vector<int8_t>();
  CHECK(*std::min_element(i8.begin(), i8.end()) == -128);
  CHECK(*std::max_element(i8.begin(), i8.end()) == 127);
  for (float v : randint(0, (int64_t{1} << 24) + 1, {1000}, kFloat32).to_vector<float>())
    CHECK((v >= 0 && v <= 16777216.0f && v == std::floor(v)));
  for (double v : randint(-256, 257, {1000}, kBFloat16).to(kFloat64).to_vector<double>())
    CHECK((v >= -256 && v <= 256));
}

TEST_CASE("io: Module::to refuses integer dtypes, as PyTorch's nn.Module.to does",
          "[catalogue][io][module]") {
  nn::Linear lin(3, 2);
  for (Dtype d : {kInt8, kInt32, kInt64})
    CHECK_THROWS_WITH(lin.to(d), Contains("[Module::to] only floating dtypes are accepted") &&
                                     Contains(std::string(dtype_name(d))));
  // Nothing changed: still Float32 and trainable.
  for (const Tensor& p : lin.parameters()) {
    CHECK(p.dtype() == kFloat32);
    CHECK(p.requires_grad());
  }
  lin.to(kFloat64);
  for (const Tensor& p : lin.parameters()) {
    CHECK(p.dtype() == kFloat64);
    CHECK(p.requires_grad());
  }
}
