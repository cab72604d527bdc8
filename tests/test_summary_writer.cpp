// SummaryWriter's bytes: CRC32C against published vectors and TensorBoard's own masked CRCs, the
// TFRecord framing, the histogram buckets, the files it writes, and its errors. TensorBoard's
// reader reads our files in tests/tensorboard (ctest tensorboard.read_back).
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "groupgrad.hpp"
#include "nn/tensorboard/event_encoding.hpp"
#include "tests/test_support.hpp"

using namespace gg;
namespace fs = std::filesystem;
namespace tb = gg::tensorboard;
using Catch::Matchers::Contains;

namespace {

struct TempDir : gg::test::TempDir {
  TempDir() : gg::test::TempDir("gg_test_tensorboard") {}
};

std::string bytes_of(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      out.push_back(e.path());
    }
  }
  return out;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t le(const std::string& s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// The payloads of a file of TFRecords, each record's two CRCs checked.
std::vector<std::string> records(const std::string& file) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < file.size()) {
    REQUIRE(file.size() - at >= 12);
    const uint64_t len = le(file, at, 8);
    REQUIRE(le(file, at + 8, 4) == tb::masked_crc32c(file.substr(at, 8)));
    REQUIRE(file.size() - at >= 16 + len);
    const std::string payload = file.substr(at + 12, len);
    REQUIRE(le(file, at + 12 + len, 4) == tb::masked_crc32c(payload));
    out.push_back(payload);
    at += 16 + len;
  }
  return out;
}

}  // namespace

TEST_CASE("crc32c matches the published check values", "[tensorboard]") {
  // The CRC catalogue's check value, and RFC 3720 (iSCSI) B.4's 32-byte vectors.
  CHECK(tb::crc32c("123456789") == 0xE3069283u);
  CHECK(tb::crc32c("") == 0u);
  CHECK(tb::crc32c(std::string(32, '\0')) == 0x8A9136AAu);
  CHECK(tb::crc32c(std::string(32, '\xff')) == 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  CHECK(tb::crc32c(ascending) == 0x46DD794Eu);
  // Masked as TensorBoard masks them (values from tensorboard's masked_crc32c).
  CHECK(tb::masked_crc32c("123456789") == 0xC78AB0E5u);
  CHECK(tb::masked_crc32c("") == 0xA282EAD8u);
  CHECK(tb::masked_crc32c(ascending) == 0x951F7892u);
}

TEST_CASE("frame_record gives TFRecord's bytes", "[tensorboard]") {
  // TensorBoard's RecordWriter wrote exactly these bytes for the payload "abc".
  const std::string expected = bytes_of(
      {0x03, 0, 0, 0, 0, 0, 0, 0, 0xb0, 0x99, 0x49, 0x0e, 'a', 'b', 'c', 0x6e, 0x57, 0xf1, 0x21});
  CHECK(tb::frame_record("abc") == expected);
  const std::string empty = tb::frame_record("");
  REQUIRE(empty.size() == 16);
  CHECK(le(empty, 0, 8) == 0);
  CHECK(le(empty, 12, 4) == 0xA282EAD8u);
}

TEST_CASE("default histogram edges are PyTorch's", "[tensorboard]") {
  const auto& e = tb::default_bucket_edges();
  REQUIRE(e.size() % 2 == 1);
  const size_t mid = e.size() / 2;
  CHECK(e[mid] == 0.0);
  CHECK(e[mid + 1] == 1e-12);
  CHECK(e[mid + 2] == 1e-12 * 1.1);
  CHECK(e.back() < 1e20);
  CHECK(e.back() * 1.1 >= 1e20);
  for (size_t i = 0; i < mid; ++i) CHECK(e[i] == -e[e.size() - 1 - i]);
  CHECK(std::is_sorted(e.begin(), e.end()));
}

TEST_CASE("make_histogram counts and trims as numpy.histogram and PyTorch do", "[tensorboard]") {
  SECTION("support at the lowest edge gets an empty bucket on its left") {
    const std::vector<double> v{0.5, 1.0, 3.0, -1.0, 5.0};
    const tb::Histogram h = tb::make_histogram(v.data(), 5, {0, 1, 2, 3});
    CHECK(h.bucket == std::vector<double>{0, 1, 1, 1});  // 3.0 falls in the closed last bucket
    CHECK(h.bucket_limit == std::vector<double>{0, 1, 2, 3});
    CHECK(h.min == -1.0);
    CHECK(h.max == 5.0);
    CHECK(h.num == 5.0);
    CHECK(h.sum == 8.5);
    CHECK(h.sum_squares == 36.25);
  }
  SECTION("support inside keeps the bucket left of it") {
    const std::vector<double> v{2.5, 2.7};
    const tb::Histogram h = tb::make_histogram(v.data(), 2, {0, 1, 2, 3, 4});
    CHECK(h.bucket == std::vector<double>{0, 2});
    CHECK(h.bucket_limit == std::vector<double>{2, 3});
  }
  SECTION("gaps inside the support are kept") {
    const std::vector<double> v{1.5, 3.5, 3.5};
    const tb::Histogram h = tb::make_histogram(v.data(), 3, {0, 1, 2, 3, 4});
    CHECK(h.bucket == std::vector<double>{0, 1, 0, 2});
    CHECK(h.bucket_limit == std::vector<double>{1, 2, 3, 4});
  }
  SECTION("errors") {
    CHECK_THROWS_WITH(tb::make_histogram(nullptr, 0, {0, 1}),
                      Contains("[add_histogram]") && Contains("numel 0"));
    const std::vector<double> v{7.0, NAN};
    CHECK_THROWS_WITH(tb::make_histogram(v.data(), 2, {0, 1}),
                      Contains("none of the 2 values lies within the bucket edges"));
  }
}

TEST_CASE("SummaryWriter writes a file_version record, then the events in order", "[tensorboard]") {
  TempDir dir;
  {
    SummaryWriter w((dir.path / "run").string(),
                    SummaryWriterOptions().max_queue(1000).flush_secs(3600));
    CHECK(w.get_logdir() == (dir.path / "run").string());
    w.add_scalar("loss", 1.5, 3);
    w.add_text("note", "hello", 4);
    w.add_histogram("w", gg::arange(10, kFloat32), 5);
    w.add_scalars("lr", {{"a", 1.0}, {"b", 2.0}}, 6);
    w.flush();
    const auto files = event_files(dir.path / "run");
    REQUIRE(files.size() == 1);
    const std::string name = files[0].filename().string();
    CHECK(name.find(fmt::format(".{}.", static_cast<long>(::getpid()))) != std::string::npos);
    const auto recs = records(read_all(files[0]));
    REQUIRE(recs.size() == 4);
    CHECK(recs[0].find("brain.Event:2") != std::string::npos);
    CHECK(recs[1].find("loss") != std::string::npos);
    CHECK(recs[2].find("note/text_summary") != std::string::npos);
    CHECK(recs[2].find("hello") != std::string::npos);
    CHECK(recs[3].find('w') != std::string::npos);
    // add_scalars: one run directory per key, named <main_tag>_<key>.
    for (const char* key : {"lr_a", "lr_b"}) {
      const auto sub = event_files(dir.path / "run" / key);
      REQUIRE(sub.size() == 1);
      CHECK(records(read_all(sub[0])).size() == 2);
    }
  }
  // Closed on destruction: nothing is lost (the count is unchanged, nothing more was pending).
  CHECK(records(read_all(event_files(dir.path / "run")[0])).size() == 4);
}

TEST_CASE("SummaryWriter buffers until max_queue, flush() or close()", "[tensorboard]") {
  TempDir dir;
  SummaryWriter w(dir.path.string(), SummaryWriterOptions().max_queue(1000).flush_secs(3600));
  const fs::path file = event_files(dir.path).at(0);
  const auto size0 = fs::file_size(file);
  w.add_scalar("x", 1, 0);
  CHECK(fs::file_size(file) == size0);  // queued, not written (the writer waits an hour)
  w.flush();
  CHECK(fs::file_size(file) > size0);
  w.add_scalar("x", 2, 1);
  w.close();
  CHECK(records(read_all(file)).size() == 3);
  // Adding after close() opens a new event file, as PyTorch does.
  w.add_scalar("x", 3, 2);
  w.close();
  CHECK(event_files(dir.path).size() == 2);
}

TEST_CASE("SummaryWriter rejects bad directories and options at construction", "[tensorboard]") {
  TempDir dir;
  const fs::path file = dir.path / "a_file";
  std::ofstream(file) << "x";
  const std::string under_file = (file / "logs").string();
  CHECK_THROWS_WITH(
      SummaryWriter(under_file),
      Contains("[SummaryWriter] cannot create the log directory '" + under_file + "'") &&
          Contains(std::strerror(ENOTDIR)));
  CHECK_THROWS_WITH(SummaryWriter(file.string()), Contains("'" + file.string() + "'"));
  CHECK_THROWS_WITH(SummaryWriter(dir.path.string(), SummaryWriterOptions().max_queue(0)),
                    Contains("[SummaryWriter] max_queue must be 1 or more, got 0"));
  CHECK_THROWS_WITH(SummaryWriter(dir.path.string(), SummaryWriterOptions().flush_secs(0)),
                    Contains("[SummaryWriter] flush_secs must be positive"));
  SummaryWriter w(dir.path.string());
  CHECK_THROWS_WITH(w.add_histogram("h", gg::zeros({0, 3}), 0), Contains("[add_histogram]"));
}

TEST_CASE("SummaryWriter refuses tags and texts that are not UTF-8, and runs outside its log dir",
          "[tensorboard]") {
  TempDir dir;
  const fs::path logs = dir.path / "logs";
  SummaryWriter w(logs.string(), SummaryWriterOptions().max_queue(1000).flush_secs(3600));
  const std::string bad = "ok\xff";
  CHECK_THROWS_WITH(w.add_scalar(bad, 1, 0),
                    Contains("[add_scalar] the tag is not valid UTF-8 (byte 0xff at offset 2 of 3 "
                             "bytes)"));
  CHECK_THROWS_WITH(w.add_histogram(bad, gg::ones({2}), 0),
                    Contains("[add_histogram] the tag is not valid UTF-8"));
  CHECK_THROWS_WITH(w.add_text("t", "\xc3(", 0),
                    Contains("[add_text] the text is not valid UTF-8"));
  CHECK_THROWS_WITH(w.add_scalars(bad, {{"a", 1}}, 0),
                    Contains("[add_scalars] the main tag is not valid UTF-8"));
  CHECK_THROWS_WITH(w.add_scalars("m", {{"a", 1}, {"\xed\xa0\x80", 2}}, 0),
                    Contains("[add_scalars] the key is not valid UTF-8"));
  // A key may nest a run (as in PyTorch) but never climb out of the log directory; a bad key
  // refuses the whole call before anything is queued.
  CHECK_THROWS_WITH(w.add_scalars("m", {{"a", 1}, {"/../../escaped", 2}}, 0),
                    Contains("[add_scalars] key '/../../escaped' of 'm' would put its run "
                             "'m_/../../escaped' outside the log directory " +
                             logs.string()));
  w.add_scalars("m", {{"x/y", 3}, {"z", 4}}, 1);
  w.add_text("t", "caf\xc3\xa9", 1);  // valid UTF-8 passes
  w.close();
  CHECK(!fs::exists(dir.path / "escaped"));
  CHECK(!fs::exists(logs / "m_a"));  // refused calls queued nothing
  CHECK(event_files(logs / "m_x" / "y").size() == 1);
  CHECK(event_files(logs / "m_z").size() == 1);
  CHECK(records(read_all(event_files(logs).at(0))).size() == 2);  // file_version + the text
}

TEST_CASE("SummaryWriter warns once and goes on when the disk is full", "[tensorboard]") {
  TempDir dir;
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_st>(log)));
  // A file size limit makes writes beyond it fail (EFBIG) as a full disk does (ENOSPC).
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  {
    SummaryWriter w(dir.path.string(), SummaryWriterOptions().max_queue(1000).flush_secs(3600));
    const fs::path file = event_files(dir.path).at(0);
    rlimit small = old;
    small.rlim_cur = fs::file_size(file) + 100;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    for (int i = 0; i < 50; ++i) w.add_scalar("loss", i, i);
    CHECK_NOTHROW(w.flush());
    for (int i = 0; i < 50; ++i) w.add_scalar("loss", i, i);
    CHECK_NOTHROW(w.flush());
    CHECK_NOTHROW(w.close());
    REQUIRE(setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHECK(fs::file_size(file) <= small.rlim_cur);
  }
  std::signal(SIGXFSZ, old_handler);
  spdlog::set_default_logger(previous);
  const std::string text = log.str();
  CHECK_THAT(text, Contains("[SummaryWriter] cannot write the event file"));
  CHECK(text.find("cannot write") == text.rfind("cannot write"));  // once
}
