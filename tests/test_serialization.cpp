// safetensors checkpoints: round trips of every dtype, gg::save/gg::load of modules in place,
// atomic writes, every validation error with its message, a file written by Python's `safetensors`
// package (tests/fixtures/make_safetensors_fixture.py), and Python reading ours when available.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/random.hpp"
#include "groupgrad.hpp"
#include "tests/test_support.hpp"

using namespace gg;
namespace fs = std::filesystem;

namespace {

std::vector<double> values(const Tensor& t) { return t.to(kFloat64).to_vector<double>(); }

struct TempDir : gg::test::TempDir {
  TempDir() : gg::test::TempDir("gg_test_serialization") {}
};

// Writes a safetensors file by hand: the given header length (default: the header's size),
// the header text and the data bytes.
void write_raw(const std::string& path, const std::string& header, size_t data_bytes = 0,
               std::optional<uint64_t> header_len = std::nullopt) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header_len.value_or(header.size());
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header;
  out << std::string(data_bytes, '\0');
}

// The tensors tests/fixtures/check_safetensors_roundtrip.py expects (value i of the flattened
// tensor in the comments).
nn::NamedTensors roundtrip_tensors() {
  auto f = [](int64_t n, auto value) {
    std::vector<double> v;
    for (int64_t i = 0; i < n; ++i) v.push_back(value(static_cast<double>(i)));
    return v;
  };
  return {
      {"a.f32", tensor<double>(f(6, [](double i) { return 0.25 * i - 1; }), {2, 3}).to(kFloat32)},
      {"a.f64", tensor<double>(f(3, [](double i) { return i / 3; }), {3})},
      {"b.bf16", tensor<double>(f(4, [](double i) { return 0.5 * i - 1; }), {4}).to(kBFloat16)},
      {"b.f16", tensor<double>(f(4, [](double i) { return 0.125 * i; }), {2, 2}).to(kFloat16)},
      {"c.i8", tensor<int8_t>({-128, 0, 127}, {3})},
      {"c.i32", tensor<int32_t>({-7, 2147483647}, {2})},
      {"c.i64", tensor<int64_t>({-(int64_t{1} << 40), (int64_t{1} << 40) + 1}, {2})},
      {"scalar", scalar_tensor(2.5)},
      {"empty", zeros({0, 4})},
  };
}

const Metadata kRoundtripMetadata = {{"writer", "groupgrad"}, {"answer", "42"}};

struct Mlp : nn::Module {
  Mlp() {
    seq = register_module(
        "seq", std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(3, 4), gg::relu,
                                                std::make_shared<nn::Linear>(4, 2)));
    ln = register_module("ln", std::make_shared<nn::LayerNorm>(2));
    counter = register_buffer("counter", tensor<int64_t>({7}, {1}));
  }
  Tensor forward(const Tensor& x) { return ln->forward(seq->forward(x)); }
  std::shared_ptr<nn::Sequential> seq;
  std::shared_ptr<nn::LayerNorm> ln;
  Tensor counter;
};

}  // namespace

TEST_CASE("serialization: every dtype round trips with shapes and metadata", "[serialization]") {
  TempDir dir;
  const std::string path = dir.file("all.safetensors");
  nn::NamedTensors tensors = roundtrip_tensors();
  // A non-contiguous tensor is written in row-major order.
  Tensor base = tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  tensors.emplace_back("transposed", base.t());
  safetensors::write(path, tensors, kRoundtripMetadata);

  safetensors::File file = safetensors::read(path);
  CHECK(file.metadata == kRoundtripMetadata);
  REQUIRE(file.tensors.size() == tensors.size());
  std::map<std::string, Tensor> read_back(file.tensors.begin(), file.tensors.end());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    REQUIRE(read_back.count(name));
    CHECK(read_back[name].dtype() == t.dtype());
    CHECK(read_back[name].shape() == t.shape());
    CHECK(values(read_back[name]) == values(t));
  }
  CHECK(values(read_back["transposed"]) == std::vector<double>{1, 4, 2, 5, 3, 6});
  // The header is padded so that the data starts 8-byte aligned, as the reference writer does.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  CHECK(n % 8 == 0);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  auto j = nlohmann::json::parse(header);
  CHECK(j["b.bf16"]["dtype"] == "BF16");
  // Wider dtypes first (as the reference writer orders them), so every tensor is aligned to its
  // element size without gaps: the 8-byte ones, then 4, 2, 1.
  CHECK(j["a.f64"]["data_offsets"] == nlohmann::json::array({0, 24}));
  CHECK(j["c.i64"]["data_offsets"] == nlohmann::json::array({24, 40}));
  CHECK(j["a.f32"]["data_offsets"] == nlohmann::json::array({40, 64}));
  CHECK(j["c.i8"]["data_offsets"] == nlohmann::json::array({116, 119}));  // the last bytes
  CHECK(fs::file_size(path) == 8 + n + 119);
  CHECK(j["scalar"]["shape"] == nlohmann::json::array());
  CHECK(j["__metadata__"]["answer"] == "42");

  REQUIRE_THROWS_WITH(
      safetensors::write(dir.file("x.safetensors"), {{"a", ones({1})}, {"a", ones({1})}}),
      Catch::Contains("the tensor name 'a' appears twice"));
  REQUIRE_THROWS_WITH(safetensors::write(dir.file("x.safetensors"), {{"__metadata__", ones({1})}}),
                      Catch::Contains("'__metadata__' is reserved"));
  REQUIRE_THROWS_WITH(safetensors::write(dir.file("x.safetensors"), {{"u", Tensor()}}),
                      Catch::Contains("tensor 'u' is undefined"));
  CHECK_FALSE(fs::exists(dir.file("x.safetensors")));
}

TEST_CASE("serialization: gg::save and gg::load restore a module in place", "[serialization]") {
  TempDir dir;
  const std::string path = dir.file("mlp.safetensors");
  manual_seed(1);
  auto a = std::make_shared<Mlp>();
  nn::init::normal_(a->ln->weight);
  a->counter.data_ptr<int64_t>()[0] = 123;
  save(*a, path, {{"epoch", "3"}});

  manual_seed(2);
  auto b = std::make_shared<Mlp>();
  std::vector<Tensor> handles = b->parameters();
  Tensor x = randn({5, 3});
  CHECK(values(a->forward(x)) != values(b->forward(x)));
  load(*b, path);
  CHECK(safetensors::read_metadata(path) == Metadata{{"epoch", "3"}});
  CHECK(values(a->forward(x)) == values(b->forward(x)));
  CHECK(b->counter.item<int64_t>() == 123);
  for (size_t i = 0; i < handles.size(); ++i) {
    CHECK(handles[i].impl() == b->parameters()[i].impl());
    CHECK(handles[i].requires_grad());
  }
  // Floating data converts to the module's dtype.
  auto c = std::make_shared<Mlp>();
  c->to(kFloat64);
  load(*c, path);
  CHECK(c->seq->at<nn::Linear>(0)->weight.dtype() == kFloat64);
  CHECK(values(c->seq->at<nn::Linear>(0)->weight) == values(a->seq->at<nn::Linear>(0)->weight));
}

TEST_CASE("serialization: load rejects missing, unexpected and mismatched keys, changing nothing",
          "[serialization][errors]") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  manual_seed(3);
  auto m = std::make_shared<Mlp>();
  const std::vector<double> before = values(m->seq->at<nn::Linear>(0)->weight);
  auto named = m->named_tensors();

  auto write_without = [&](const std::string& drop, nn::NamedTensors extra = {}) {
    nn::NamedTensors out;
    for (auto& [name, t] : named)
      if (name != drop) out.emplace_back(name, t);
    for (auto& e : extra) out.push_back(e);
    safetensors::write(path, out);
  };
  write_without("seq.2.bias");
  REQUIRE_THROWS_WITH(load(*m, path),
                      Catch::Contains("[load] " + path +
                                      ": the file does not match the module: missing keys: "
                                      "[seq.2.bias]; unexpected keys: []"));
  write_without("", {{"seq.9.weight", ones({2})}, {"extra", ones({1})}});
  REQUIRE_THROWS_WITH(load(*m, path),
                      Catch::Contains("missing keys: []; unexpected keys: [seq.9.weight, extra]"));

  nn::NamedTensors wrong_shape;
  for (auto& [name, t] : named)
    wrong_shape.emplace_back(name, name == "seq.0.weight" ? ones({3, 4}) : t);
  safetensors::write(path, wrong_shape);
  REQUIRE_THROWS_WITH(load(*m, path),
                      Catch::Contains("[load] " + path +
                                      ": 'seq.0.weight' has shape [3, 4] in the file but [4, 3] in "
                                      "the module"));
  nn::NamedTensors wrong_dtype;
  for (auto& [name, t] : named)
    wrong_dtype.emplace_back(name, name == "counter" ? ones({1}) : t * 0.0 + 1.0);
  safetensors::write(path, wrong_dtype);
  REQUIRE_THROWS_WITH(load(*m, path),
                      Catch::Contains("'counter' is float32 in the file but int64 in the module"));
  // Nothing was loaded by the failed attempts (all of them validate first).
  CHECK(values(m->seq->at<nn::Linear>(0)->weight) == before);
}

TEST_CASE("serialization: writes are atomic (temp file + rename)", "[serialization]") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  safetensors::write(path, {{"v", ones({4})}});
  safetensors::write(path, {{"v", zeros({2})}});  // replaces
  CHECK(values(safetensors::read(path).tensors[0].second) == std::vector<double>{0, 0});
  auto entries = [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename());
    return names;
  };
  CHECK(entries() == std::vector<std::string>{"ckpt.safetensors"});  // no temp files left

  // The rename fails when the target is a directory: the error names it, the temp file is gone.
  const std::string as_dir = dir.file("is_a_dir");
  fs::create_directory(as_dir);
  REQUIRE_THROWS_WITH(safetensors::write(as_dir, {{"v", ones({4})}}),
                      Catch::Contains("[save] " + as_dir + ": renaming"));
  std::vector<std::string> left = entries();
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{"ckpt.safetensors", "is_a_dir"});
  REQUIRE_THROWS_WITH(safetensors::write(dir.file("missing/dir/x.safetensors"), {{"v", ones({1})}}),
                      Catch::Contains("cannot create the temporary file"));
  // A relative path writes in the current directory's terms.
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path);
  safetensors::write("relative.safetensors", {{"v", ones({1})}});
  fs::current_path(cwd);
  CHECK(fs::exists(dir.file("relative.safetensors")));
}

TEST_CASE("serialization: every malformed file is rejected with a message naming it",
          "[serialization][errors]") {
  TempDir dir;
  const std::string p = dir.file("bad.safetensors");
  auto expect = [&](const std::string& what) {
    REQUIRE_THROWS_WITH(safetensors::read(p), Catch::Contains("[safetensors] " + p + ": " + what));
  };
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  {
    std::ofstream(p, std::ios::binary) << "abc";
    expect("the file is 3 bytes, too short for the 8-byte header length");
  }
  write_raw(p, "{}", 0, 1000);
  expect("header length 1000 exceeds the file size (10 bytes, 2 after the 8-byte length)");
  {
    // A sparse 200 MB file whose header length claims 150 MB: over the 100 MB limit.
    write_raw(p, "", 0, 150'000'000);
    fs::resize_file(p, 200'000'000);
    expect("header length 150000000 is over the 100000000-byte limit");
  }
  write_raw(p, R"({"t": {"dtype": "F32",)");
  expect("the header is not valid JSON");
  write_raw(p, "[1, 2]");
  expect("the header must be a JSON object, got array");
  write_raw(p, R"({"t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", 2);
  expect("tensor 't' has unknown dtype 'U8' (supported: F32, F64, BF16, F16, I8, I32, I64)");
  write_raw(p, R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}})", 24);
  expect("tensor 't' has data_offsets [0, 12) holding 12 bytes, but F32 [2,3] needs 24 bytes");
  write_raw(p, "{" + ok_entry + "}", 4);
  expect("tensor 't' has data_offsets [0, 8) outside the data section (4 bytes)");
  write_raw(p,
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
            R"("b":{"dtype":"I32","shape":[3],"data_offsets":[4,16]}})",
            16);
  expect("tensors 'a' [0, 8) and 'b' [4, 16) overlap in the data section");
  write_raw(p, "{" + ok_entry + "," + ok_entry + "}", 8);
  expect("the header names 't' twice");
  write_raw(p, R"({"t":{"dtype":"F32","shape":[2]}})", 8);
  expect("tensor 't' lacks the field 'data_offsets'");
  write_raw(p, R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", 8);
  expect("tensor 't' has an unknown field 'extra'");
  write_raw(p, R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8);
  expect("tensor 't' has an invalid shape [-2]");
  write_raw(p, R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8);
  expect("tensor 't' has invalid data_offsets [8,0]");
  write_raw(p, R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8);
  expect("tensor 't' with shape [4294967296,4294967296] is too large");
  write_raw(p, R"({"t":[1]})", 8);
  expect("tensor 't' must be a JSON object, got array");
  write_raw(p, R"({"__metadata__":{"k":1},)" + ok_entry + "}", 8);
  expect("__metadata__ entry 'k' is not a string: 1");
  REQUIRE_THROWS_WITH(safetensors::read(dir.file("absent.safetensors")),
                      Catch::Contains("[safetensors] " + dir.file("absent.safetensors") +
                                      ": cannot open the file"));

  // Well-formed edge cases are accepted: empty header object, zero-size tensors sharing an offset,
  // trailing spaces after the JSON.
  write_raw(p, "{}");
  CHECK(safetensors::read(p).tensors.empty());
  write_raw(p, R"({"e":{"dtype":"F64","shape":[0],"data_offsets":[0,0]},)"
               R"("f":{"dtype":"I8","shape":[0,5],"data_offsets":[0,0]}}   )");
  CHECK(safetensors::read(p).tensors.size() == 2);
  // A module load of a malformed file reports the format problem.
  nn::Linear lin(2, 2);
  write_raw(p, "{" + ok_entry + "}", 4);
  REQUIRE_THROWS_WITH(load(lin, p), Catch::Contains("outside the data section"));
  REQUIRE_THROWS_WITH(safetensors::read_metadata(p), Catch::Contains("outside the data section"));
}

TEST_CASE("serialization: loads files written by Python's safetensors package", "[serialization]") {
  safetensors::File f =
      safetensors::read(std::string(GG_FIXTURE_DIR) + "/python_tensors.safetensors");
  CHECK(f.metadata ==
        Metadata{{"producer", "make_safetensors_fixture.py"}, {"purpose", "dtype coverage"}});
  std::map<std::string, Tensor> t(f.tensors.begin(), f.tensors.end());
  REQUIRE(t.size() == 9);
  auto check = [&](const std::string& name, Dtype dtype, Shape shape, std::vector<double> want) {
    INFO(name);
    REQUIRE(t.count(name));
    CHECK(t[name].dtype() == dtype);
    CHECK(t[name].shape() == shape);
    CHECK(values(t[name]) == want);
  };
  check("f32", kFloat32, {2, 3}, {-1, -0.5, 0, 0.5, 1, 1.5});
  check("f64", kFloat64, {4}, {0, 1.0 / 3, 2.0 / 3, 1});
  check("bf16", kBFloat16, {3}, {1.5, -2.25, 0.375});
  check("f16", kFloat16, {2, 2}, {0, 0.125, 0.25, 0.375});
  check("i8", kInt8, {5}, {-128, -1, 0, 1, 127});
  check("i32", kInt32, {3}, {-7, 0, 2147483647});
  check("nested.scalar", kFloat32, {}, {3.5});
  check("nested.empty", kFloat32, {0, 3}, {});
  CHECK(t["i64"].to_vector<int64_t>() ==
        std::vector<int64_t>{-(int64_t{1} << 40), (int64_t{1} << 40) + 1});

  // A PyTorch nn.Sequential(Linear(3, 4), ReLU(), Linear(4, 2)) state_dict loads into ours by name
  // ("0.weight", "2.bias", ...) and gives PyTorch's output.
  const std::string mlp_path = std::string(GG_FIXTURE_DIR) + "/python_mlp.safetensors";
  nn::Sequential mlp(std::make_shared<nn::Linear>(3, 4), gg::relu,
                     std::make_shared<nn::Linear>(4, 2));
  load(mlp, mlp_path);
  const Metadata meta = safetensors::read_metadata(mlp_path);
  auto parse = [&](const std::string& key) { return nlohmann::json::parse(meta.at(key)); };
  Tensor x =
      tensor<double>(parse("input").get<std::vector<double>>(), parse("input_shape").get<Shape>())
          .to(kFloat32);
  std::vector<double> want = parse("output").get<std::vector<double>>();
  std::vector<double> got = values(mlp.forward(x));
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).margin(1e-6));
}

TEST_CASE("serialization: Python's safetensors reads our file (skipped without python3)",
          "[serialization][python]") {
  TempDir dir;
  const std::string path = dir.file("ours.safetensors");
  safetensors::write(path, roundtrip_tensors(), kRoundtripMetadata);
  const std::string script = std::string(GG_FIXTURE_DIR) + "/check_safetensors_roundtrip.py";
  const std::string command =
      fmt::format("python3 '{}' '{}' > '{}' 2>&1", script, path, dir.file("log.txt"));
  const int status = std::system(command.c_str());
  std::ifstream log(dir.file("log.txt"));
  const std::string output((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 77 || code == 127) {
    WARN("SKIPPED: python3 with the safetensors package is not available here: " << output);
    return;
  }
  INFO(output);
  CHECK(code == 0);
}
