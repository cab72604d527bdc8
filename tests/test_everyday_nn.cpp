// Everyday nn (issue 18): ModuleList / ModuleDict, public register_*, Module::apply, printing in
// libtorch's format (against strings libtorch itself printed: fixtures/module_print.json), clone()
// (deep and independent), gg::save/load on a shared_ptr, GroupedLinear's batched 3-D forward
// (against the per-group loop and finite differences), and layer errors that name the layer.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/copy.hpp"
#include "groupgrad.hpp"
#include "tests/fixture_support.hpp"
#include "tests/snippets/module_list_ensemble.hpp"
#include "tests/test_support.hpp"

// The user modules of the printing fixture: same names and structure as in
// make_module_print_fixtures.py (libtorch prints the demangled class name), at global scope.
struct EverydayBlock : gg::nn::Module {
  EverydayBlock() {
    norm = register_module("norm", std::make_shared<gg::nn::LayerNorm>(8));
    proj = register_module("proj", std::make_shared<gg::nn::Linear>(8, 8));
  }
  std::shared_ptr<gg::nn::LayerNorm> norm;
  std::shared_ptr<gg::nn::Linear> proj;
};

struct EverydayNet : gg::nn::Module {
  EverydayNet() {
    emb = register_module("emb", std::make_shared<gg::nn::Embedding>(16, 8));
    blocks = register_module("blocks", std::make_shared<gg::nn::ModuleList>());
    for (int i = 0; i < 2; ++i) blocks->push_back(std::make_shared<EverydayBlock>());
    head = register_module(
        "head", std::make_shared<gg::nn::Sequential>(
                    std::make_shared<gg::nn::Linear>(8, 4), std::make_shared<gg::nn::Dropout>(0.1),
                    std::make_shared<gg::nn::Linear>(4, 1, false)));
  }
  std::shared_ptr<gg::nn::Embedding> emb;
  std::shared_ptr<gg::nn::ModuleList> blocks;
  std::shared_ptr<gg::nn::Sequential> head;
};

struct EverydayLeaf : gg::nn::Module {};

// A user module with clone() through Cloneable, libtorch's way: everything registered in reset().
struct CloneNet : gg::nn::Cloneable<CloneNet> {
  explicit CloneNet(int64_t hidden) : hidden(hidden) { reset(); }
  void reset() override {
    fc = register_module("fc", std::make_shared<gg::nn::Linear>(3, hidden));
    experts = register_module("experts", std::make_shared<gg::nn::ModuleList>());
    for (int i = 0; i < 2; ++i) experts->push_back(std::make_shared<gg::nn::Linear>(hidden, 2));
    scale = register_parameter("scale", gg::ones({2}));
    steps = register_buffer("steps", gg::zeros({1}, gg::kInt64));
  }
  gg::Tensor forward(const gg::Tensor& x) {
    gg::Tensor h = gg::tanh(fc->forward(x));
    return (experts->at<gg::nn::Linear>(0).forward(h) + experts->at<gg::nn::Linear>(1).forward(h)) *
           scale;
  }
  int64_t hidden;
  std::shared_ptr<gg::nn::Linear> fc;
  std::shared_ptr<gg::nn::ModuleList> experts;
  gg::Tensor scale, steps;
};

// A Cloneable whose reset() forgets a parameter the constructor added: clone() must say so.
struct ForgetfulNet : gg::nn::Cloneable<ForgetfulNet> {
  ForgetfulNet() {
    reset();
    register_parameter("late", gg::zeros({2}));
  }
  void reset() override { fc = register_module("fc", std::make_shared<gg::nn::Linear>(2, 2)); }
  std::shared_ptr<gg::nn::Linear> fc;
};

using namespace gg;
using gg::test::values;
namespace F = gg::nn::functional;
using Catch::Contains;

namespace {

std::string printed(const nn::Module& m) {
  std::ostringstream out;
  out << m;
  return out.str();
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::vector<std::string> names_of(const nn::NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named) out.push_back(name);
  return out;
}

// Every parameter and buffer value of a module, in named_tensors() order.
std::vector<std::vector<double>> state_values(const nn::Module& m) {
  std::vector<std::vector<double>> out;
  for (const auto& [name, t] : m.named_tensors()) out.push_back(values(t));
  return out;
}

// The clone has the original's names, shapes, dtypes, values and requires_grad, in new storages,
// and no grads.
void check_deep_copy(const nn::Module& original, const nn::Module& copy) {
  const nn::NamedTensors a = original.named_tensors(), b = copy.named_tensors();
  REQUIRE(names_of(a) == names_of(b));
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    const Tensor &x = a[i].second, &y = b[i].second;
    CHECK(x.impl() != y.impl());
    CHECK(x.impl()->storage != y.impl()->storage);
    CHECK(x.shape() == y.shape());
    CHECK(x.dtype() == y.dtype());
    CHECK(x.requires_grad() == y.requires_grad());
    CHECK(!y.grad().defined());
    CHECK(values(x) == values(y));
  }
  std::vector<bool> ta, tb;
  original.apply([&](const nn::Module& m) { ta.push_back(m.is_training()); });
  copy.apply([&](const nn::Module& m) { tb.push_back(m.is_training()); });
  CHECK(ta == tb);
  CHECK(typeid(original) == typeid(copy));
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& name)
      : path((std::filesystem::temp_directory_path() /
              fmt::format("gg_everyday_{}_{}", static_cast<long>(::getpid()), name))
                 .string()) {}
  ~TempFile() { std::filesystem::remove(path); }
};

}  // namespace

// ==== printing ===================================================================================

TEST_CASE("everyday nn: modules print as libtorch prints them", "[everyday_nn][print]") {
  const nlohmann::json& doc = test::fixture("module_print.json");
  const auto& cases = doc.at("cases");
  auto expected = [&](const std::string& name) {
    // libtorch's namespace is ours; its Dropout prints an inplace option ours does not have.
    std::string s = cases.at(name).get<std::string>();
    return replace_all(replace_all(s, "torch::nn::", "gg::nn::"), ", inplace=false", "");
  };
  auto dict = std::make_shared<nn::ModuleDict>();
  dict->insert("encoder", std::make_shared<nn::Linear>(5, 2));
  dict->insert("norm", std::make_shared<nn::LayerNorm>(2));
  const std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>> ours = {
      {"linear", std::make_shared<nn::Linear>(4, 3)},
      {"linear_no_bias", std::make_shared<nn::Linear>(3, 1, false)},
      {"embedding", std::make_shared<nn::Embedding>(10, 2)},
      {"layer_norm", std::make_shared<nn::LayerNorm>(4)},
      {"layer_norm_options", std::make_shared<nn::LayerNorm>(Shape{3, 2}, 1e-6, false)},
      {"dropout", std::make_shared<nn::Dropout>(0.25)},
      {"dropout_default", std::make_shared<nn::Dropout>()},
      {"sequential", std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 3),
                                                      std::make_shared<nn::Dropout>(0.5),
                                                      std::make_shared<nn::Linear>(3, 1))},
      {"module_list", std::make_shared<nn::ModuleList>(std::make_shared<nn::Linear>(2, 2),
                                                       std::make_shared<nn::Linear>(2, 1))},
      {"module_dict", dict},
      {"user_module", std::make_shared<EverydayNet>()},
      {"user_leaf", std::make_shared<EverydayLeaf>()},
      {"empty_sequential", std::make_shared<nn::Sequential>()},
  };
  REQUIRE(cases.size() == ours.size());
  for (const auto& [name, module] : ours) {
    INFO(name);
    CHECK(printed(*module) == expected(name));
  }
  // The fixture is what libtorch printed, e.g. (spelled out so that a reader sees the format):
  CHECK(cases.at("linear") == "torch::nn::Linear(in_features=4, out_features=3, bias=true)");
  CHECK(printed(*ours[10].second).rfind("EverydayNet(\n  (emb): gg::nn::Embedding(", 0) == 0);
}

TEST_CASE("everyday nn: printing of the layers libtorch does not have", "[everyday_nn][print]") {
  // libtorch's rule for a module with options and children: its line, then the children.
  CHECK(printed(nn::GroupedLinear({4, 4}, {3, 2}, false)) ==
        "gg::nn::GroupedLinear(in_features=[4, 4], out_features=[3, 2], bias=false)");
  CHECK(printed(nn::MultiheadAttention(8, 2, 0.1)) ==
        "gg::nn::MultiheadAttention(embed_dim=8, num_heads=2, dropout=0.1, bias=true)(\n"
        "  (out_proj): gg::nn::Linear(in_features=8, out_features=8, bias=true)\n"
        ")");
  CHECK(printed(nn::MoEFeedForward(4, 6, 3, 2, {.bias = false})) ==
        "gg::nn::MoEFeedForward(embed_dim=4, hidden_dim=6, num_experts=3, top_k=2, "
        "normalize_top_k=true, bias=false)(\n"
        "  (router): gg::nn::Linear(in_features=4, out_features=3, bias=false)\n"
        "  (up): gg::nn::GroupedLinear(in_features=[4, 4, 4], out_features=[6, 6, 6], bias=false)\n"
        "  (down): gg::nn::GroupedLinear(in_features=[6, 6, 6], out_features=[4, 4, 4], "
        "bias=false)\n"
        ")");
  nn::ParameterList list;
  list.append(zeros({3, 4}));
  list.append(zeros({3, 4}));
  list.append(zeros({2}, kFloat64));
  CHECK(printed(list) == "gg::nn::ParameterList(2 x float32 [3, 4], float64 [2])");
  CHECK(printed(nn::Sequential(gg::relu)) == "gg::nn::Sequential(\n  (0): gg::nn::Functional()\n)");
  CHECK(printed(nn::LayerNorm(Shape{2, 3}, 0.001)) ==
        "gg::nn::LayerNorm([2, 3], eps=0.001, elementwise_affine=true)");
  // name(): the demangled class.
  CHECK(nn::Linear(2, 2).name() == "gg::nn::Linear");
  CHECK(EverydayNet().name() == "EverydayNet");
  CHECK(nn::Module().name() == "gg::nn::Module");
}

// ==== apply, public register_* =================================================================

TEST_CASE("everyday nn: apply visits the module and its descendants in pre-order",
          "[everyday_nn][apply]") {
  EverydayNet net;
  std::vector<std::string> names;
  net.apply([&](const std::string& name, nn::Module&) { names.push_back(name); });
  const std::vector<std::string> want = {
      "",         "emb",           "blocks",        "blocks.0", "blocks.0.norm", "blocks.0.proj",
      "blocks.1", "blocks.1.norm", "blocks.1.proj", "head",     "head.0",        "head.1",
      "head.2"};
  CHECK(names == want);
  names.clear();
  std::as_const(net).apply(
      [&](const std::string& name, const nn::Module&) { names.push_back(name); }, "model");
  CHECK(names.front() == "model");
  CHECK(names[4] == "model.blocks.0.norm");

  // The unnamed form sees the same modules; a typical use: re-initialise every Linear.
  std::vector<std::string> classes;
  net.apply([&](nn::Module& m) {
    classes.push_back(m.name());
    if (auto* lin = dynamic_cast<nn::Linear*>(&m)) nn::init::zeros_(lin->weight);
  });
  CHECK(classes.size() == want.size());
  CHECK(classes[0] == "EverydayNet");
  CHECK(classes[3] == "EverydayBlock");
  for (const auto& [name, p] : net.named_parameters())
    if (name.ends_with("proj.weight") || name.ends_with("head.0.weight"))
      CHECK(values(p) == std::vector<double>(static_cast<size_t>(p.numel()), 0.0));
}

TEST_CASE("everyday nn: register_module, register_parameter and register_buffer are public",
          "[everyday_nn][register]") {
  auto root = std::make_shared<nn::Module>();
  auto fc = root->register_module("fc", std::make_shared<nn::Linear>(2, 3));
  root->register_parameter("scale", ones({3}));
  root->register_buffer("count", zeros({1}, kInt64));
  CHECK(names_of(root->named_parameters()) ==
        std::vector<std::string>{"scale", "fc.weight", "fc.bias"});
  CHECK(names_of(root->named_buffers()) == std::vector<std::string>{"count"});
  // A cycle would make every walk recurse forever: refused.
  auto child = std::make_shared<nn::Module>();
  root->register_module("child", child);
  CHECK_THROWS_WITH(
      child->register_module("up", root),
      Contains("[register_module] 'up': gg::nn::Module contains this module") && Contains("cycle"));
  CHECK_THROWS_WITH(fc->register_module("self", fc), Contains("its own child"));
}

// ==== ModuleList =================================================================================

TEST_CASE("everyday nn: ModuleList holds, names and indexes modules",
          "[everyday_nn][module_list]") {
  manual_seed(1);
  auto root = std::make_shared<nn::Module>();
  auto blocks = root->register_module("blocks", std::make_shared<nn::ModuleList>());
  CHECK(blocks->empty());
  auto a = std::make_shared<nn::Linear>(2, 3);
  auto b = std::make_shared<nn::Embedding>(5, 2);
  blocks->push_back(a);
  blocks->append(b);
  CHECK(blocks->size() == 2);
  CHECK(names_of(root->named_parameters()) ==
        std::vector<std::string>{"blocks.0.weight", "blocks.0.bias", "blocks.1.weight"});
  CHECK((*blocks)[0] == a);
  CHECK(blocks->ptr(1) == b);
  CHECK(blocks->ptr<nn::Linear>(0) == a);
  CHECK(&blocks->at<nn::Embedding>(1) == b.get());
  std::vector<nn::Module*> seen;
  for (const auto& m : *blocks) seen.push_back(m.get());
  CHECK(seen == std::vector<nn::Module*>{a.get(), b.get()});

  // insert keeps the children named "0", "1", ... in list order.
  auto c = std::make_shared<nn::Linear>(1, 1, false);
  blocks->insert(1, c);
  CHECK(blocks->ptr(1) == c);
  CHECK(blocks->ptr(2) == b);
  CHECK(names_of(root->named_parameters()) ==
        std::vector<std::string>{"blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                                 "blocks.2.weight"});
  CHECK(root->parameter("blocks.1.weight").impl() == c->weight.impl());
  CHECK(root->parameter("blocks.2.weight").impl() == b->weight.impl());
  blocks->insert(0, std::make_shared<nn::Dropout>());
  blocks->insert(blocks->size(), std::make_shared<nn::Dropout>());
  CHECK(blocks->size() == 5);
  const auto children = blocks->named_children();
  for (size_t i = 0; i < children.size(); ++i) {
    CHECK(children[i].first == std::to_string(i));
    CHECK(children[i].second == blocks->ptr(i));
  }

  // extend: from another list (the same modules) or from a vector of shared_ptrs.
  nn::ModuleList more(std::make_shared<nn::Linear>(2, 2), std::make_shared<nn::Linear>(2, 2));
  blocks->extend(more);
  blocks->extend(std::vector<std::shared_ptr<nn::Linear>>{std::make_shared<nn::Linear>(4, 4)});
  CHECK(blocks->size() == 8);
  CHECK(blocks->ptr(5) == more.ptr(0));
  CHECK(blocks->at<nn::Linear>(7).in_features() == 4);

  // train/eval reach the modules of the list.
  root->eval();
  for (const auto& m : *blocks) CHECK(!m->is_training());

  // Errors name ModuleList, the index and the classes.
  CHECK_THROWS_WITH(blocks->ptr(8), Contains("[ModuleList] index 8 is out of range for 8 modules"));
  CHECK_THROWS_WITH((*blocks)[99], Contains("[ModuleList] index 99 is out of range"));
  CHECK_THROWS_WITH(blocks->ptr<nn::Embedding>(0),
                    Contains("[ModuleList] module 0 is gg::nn::Dropout, not gg::nn::Embedding"));
  CHECK_THROWS_WITH(blocks->at<nn::LayerNorm>(1),
                    Contains("[ModuleList] module 1 is gg::nn::Linear, not gg::nn::LayerNorm"));
  CHECK_THROWS_WITH(blocks->push_back(nullptr),
                    Contains("[ModuleList] cannot add a null module (at index 8)"));
  CHECK_THROWS_WITH(blocks->insert(10, std::make_shared<nn::Dropout>()),
                    Contains("[ModuleList] insert index 10 is out of range for 8 modules"));
  CHECK(blocks->size() == 8);
}

// ==== ModuleDict =================================================================================

TEST_CASE("everyday nn: ModuleDict keeps insertion order and names its keys",
          "[everyday_nn][module_dict]") {
  auto root = std::make_shared<nn::Module>();
  auto heads = root->register_module(
      "heads", std::make_shared<nn::ModuleDict>(std::vector<nn::ModuleDict::Item>{
                   {"zeta", std::make_shared<nn::Linear>(2, 1)},
                   {"alpha", std::make_shared<nn::Linear>(2, 3, false)}}));
  auto norm = std::make_shared<nn::LayerNorm>(2);
  heads->insert("norm", norm);
  CHECK(heads->size() == 3);
  CHECK(heads->keys() == std::vector<std::string>{"zeta", "alpha", "norm"});  // not sorted
  CHECK(names_of(root->named_parameters()) ==
        std::vector<std::string>{"heads.zeta.weight", "heads.zeta.bias", "heads.alpha.weight",
                                 "heads.norm.weight", "heads.norm.bias"});
  CHECK(heads->contains("alpha"));
  CHECK(!heads->contains("beta"));
  CHECK((*heads)["norm"] == norm);
  CHECK(heads->at<nn::Linear>("alpha").out_features() == 3);
  CHECK(heads->ptr<nn::LayerNorm>("norm") == norm);
  CHECK(heads->values().size() == 3);
  std::vector<std::string> keys;
  for (const auto& [key, module] : *heads) keys.push_back(key);
  CHECK(keys == heads->keys());
  CHECK(heads->items()[1].first == "alpha");

  // update replaces in place (order kept) and appends new keys.
  auto alpha2 = std::make_shared<nn::Linear>(2, 5);
  heads->update({{"alpha", alpha2}, {"omega", std::make_shared<nn::Dropout>()}});
  CHECK(heads->keys() == std::vector<std::string>{"zeta", "alpha", "norm", "omega"});
  CHECK((*heads)["alpha"] == alpha2);
  CHECK(root->parameter("heads.alpha.weight").impl() == alpha2->weight.impl());

  // pop removes the module and its parameters.
  auto popped = heads->pop("zeta");
  CHECK(popped != nullptr);
  CHECK(heads->keys() == std::vector<std::string>{"alpha", "norm", "omega"});
  CHECK(names_of(root->named_parameters())[0] == "heads.alpha.weight");

  // Errors name ModuleDict and the key.
  CHECK_THROWS_WITH(heads->insert("norm", std::make_shared<nn::Dropout>()),
                    Contains("[ModuleDict] key 'norm' is already present; use update()"));
  CHECK_THROWS_WITH(
      (*heads)["beta"],
      Contains("[ModuleDict] no module under key 'beta' (keys: [alpha, norm, omega])"));
  CHECK_THROWS_WITH(heads->pop("beta"), Contains("[ModuleDict] pop: no module under key 'beta'"));
  CHECK_THROWS_WITH(heads->at<nn::Embedding>("norm"),
                    Contains("[ModuleDict] the module under key 'norm' is gg::nn::LayerNorm, not "
                             "gg::nn::Embedding"));
  CHECK_THROWS_WITH(heads->insert("a.b", std::make_shared<nn::Dropout>()),
                    Contains("[ModuleDict] key 'a.b' must not contain a dot"));
  CHECK_THROWS_WITH(heads->insert("", std::make_shared<nn::Dropout>()),
                    Contains("[ModuleDict] a key must not be empty"));
  CHECK_THROWS_WITH(heads->insert("x", nullptr),
                    Contains("[ModuleDict] cannot insert a null module under key 'x'"));
  CHECK_THROWS_WITH(nn::ModuleDict({{"k", std::make_shared<nn::Dropout>()},
                                    {"k", std::make_shared<nn::Dropout>()}}),
                    Contains("[ModuleDict] key 'k' is already present"));
  heads->clear();
  CHECK(heads->empty());
  CHECK(root->named_parameters().empty());
}

// ==== clone ======================================================================================

TEST_CASE("everyday nn: every built-in layer clones deeply", "[everyday_nn][clone]") {
  manual_seed(3);
  const Tensor x = randn({2, 3, 4});
  auto check_same_forward = [](nn::Module& a, nn::Module& b,
                               const std::function<Tensor(nn::Module&)>& f) {
    CHECK(values(f(a)) == values(f(b)));
  };
  {
    auto lin = std::make_shared<nn::Linear>(4, 3);
    lin->bias.requires_grad_(false);  // frozen: stays frozen in the copy
    lin->weight.set_grad(ones({3, 4}));
    lin->eval();
    auto copy = std::dynamic_pointer_cast<nn::Linear>(lin->clone());
    REQUIRE(copy != nullptr);
    check_deep_copy(*lin, *copy);
    CHECK(!copy->bias.requires_grad());
    CHECK(!copy->is_training());
    check_same_forward(*lin, *copy,
                       [&](nn::Module& m) { return static_cast<nn::Linear&>(m).forward(x); });
  }
  {
    auto emb = std::make_shared<nn::Embedding>(7, 3);
    emb->to(kFloat64);  // the copy keeps the converted dtype
    auto copy = emb->clone();
    check_deep_copy(*emb, *copy);
    CHECK(std::dynamic_pointer_cast<nn::Embedding>(copy)->weight.dtype() == kFloat64);
  }
  for (bool affine : {true, false}) {
    auto ln = std::make_shared<nn::LayerNorm>(Shape{3, 4}, 1e-3, affine);
    if (affine) nn::init::normal_(ln->weight);
    auto copy = ln->clone();
    check_deep_copy(*ln, *copy);
    CHECK(printed(*copy) == printed(*ln));
    check_same_forward(*ln, *copy,
                       [&](nn::Module& m) { return static_cast<nn::LayerNorm&>(m).forward(x); });
  }
  {
    nn::Dropout drop(0.3);
    CHECK(printed(*drop.clone()) == "gg::nn::Dropout(p=0.3)");
  }
  {
    auto gl =
        std::make_shared<nn::GroupedLinear>(std::vector<int64_t>{4, 4}, std::vector<int64_t>{3, 3});
    auto copy = std::dynamic_pointer_cast<nn::GroupedLinear>(gl->clone());
    check_deep_copy(*gl, *copy);
    // The copy's groups are back to back like the original's: its stacked weight is a view.
    CHECK(copy->stacked_weight().impl()->storage == (*copy->weight)[0].impl()->storage);
    check_same_forward(*gl, *copy, [&](nn::Module& m) {
      return static_cast<nn::GroupedLinear&>(m).forward(
          x.narrow(2, 0, 4).narrow(1, 0, 3).narrow(0, 0, 2));
    });
  }
  {
    auto mha = std::make_shared<nn::MultiheadAttention>(4, 2);
    auto copy = std::dynamic_pointer_cast<nn::MultiheadAttention>(mha->clone());
    check_deep_copy(*mha, *copy);
    CHECK(values(std::get<0>(mha->forward(x, x, x))) ==
          values(std::get<0>(copy->forward(x, x, x))));
  }
  {
    auto moe = std::make_shared<nn::MoEFeedForward>(4, 6, 3, 2);
    auto copy = std::dynamic_pointer_cast<nn::MoEFeedForward>(moe->clone());
    check_deep_copy(*moe, *copy);
    CHECK(values(moe->forward(x)) == values(copy->forward(x)));
  }
  {
    auto seq = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 5), gg::relu,
                                                std::make_shared<nn::Linear>(5, 2));
    auto copy = std::dynamic_pointer_cast<nn::Sequential>(seq->clone());
    check_deep_copy(*seq, *copy);
    CHECK(values(seq->forward(x)) == values(copy->forward(x)));
    CHECK(printed(*copy) == printed(*seq));
  }
  {
    auto dict = std::make_shared<nn::ModuleDict>();
    dict->insert("b", std::make_shared<nn::Linear>(2, 2));
    dict->insert("a", std::make_shared<nn::ModuleList>(std::make_shared<nn::Linear>(2, 1)));
    dict->ptr<nn::ModuleList>("a")->eval();
    auto copy = std::dynamic_pointer_cast<nn::ModuleDict>(dict->clone());
    check_deep_copy(*dict, *copy);
    CHECK(copy->keys() == dict->keys());
    CHECK(!copy->ptr<nn::ModuleList>("a")->ptr(0)->is_training());
    CHECK(copy->ptr<nn::Linear>("b")->is_training());
  }
}

TEST_CASE("everyday nn: a clone trains independently of its original", "[everyday_nn][clone]") {
  manual_seed(4);
  auto net = std::make_shared<CloneNet>(5);
  net->experts->ptr(1)->eval();
  auto copy = std::dynamic_pointer_cast<CloneNet>(net->clone());
  REQUIRE(copy != nullptr);
  check_deep_copy(*net, *copy);
  CHECK(copy->hidden == 5);
  // The copy's members point at its own registrations, not the original's.
  CHECK(copy->fc != net->fc);
  CHECK(copy->parameter("fc.weight").impl() == copy->fc->weight.impl());
  CHECK(copy->scale.impl() == copy->parameter("scale").impl());
  CHECK(copy->buffer("steps").impl() == copy->steps.impl());

  const auto before = state_values(*net);
  const Tensor x = randn({6, 3});
  optim::SGD opt(copy->parameters(), optim::SGDOptions(0.1));
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    copy->forward(x).pow(2).mean().backward();
    opt.step();
  }
  {
    NoGradGuard no_grad;
    copy_(copy->steps, full({1}, 3, kInt64));
  }
  CHECK(state_values(*net) == before);  // the original is untouched
  CHECK(state_values(*copy) != before);
  for (const Tensor& p : net->parameters()) CHECK(!p.grad().defined());

  // Copying a Cloneable directly is shallow, as in libtorch: the same tensors.
  CloneNet shallow = *net;
  CHECK(shallow.fc == net->fc);
  CHECK(shallow.parameter("scale").impl() == net->scale.impl());
}

TEST_CASE("everyday nn: modules that cannot be cloned say why", "[everyday_nn][clone]") {
  CHECK_THROWS_WITH(EverydayNet().clone(),
                    Contains("[clone] EverydayNet cannot be cloned: derive it from "
                             "gg::nn::Cloneable<EverydayNet>"));
  CHECK_THROWS_WITH(nn::Module().clone(), Contains("[clone] gg::nn::Module cannot be cloned"));
  // A container holding one fails with that module's class named.
  nn::ModuleList list(std::make_shared<nn::Linear>(1, 1), std::make_shared<EverydayLeaf>());
  CHECK_THROWS_WITH(list.clone(), Contains("[clone] EverydayLeaf cannot be cloned"));
  CHECK_THROWS_WITH(ForgetfulNet().clone(),
                    Contains("[clone] ForgetfulNet: the copy has parameters [fc.weight, fc.bias] "
                             "and buffers [] but the original has parameters [late, fc.weight, "
                             "fc.bias]") &&
                        Contains("register every parameter, buffer and submodule in reset()"));
}

// ==== save / load through shared_ptr =============================================================

TEST_CASE("everyday nn: gg::save and gg::load take a shared_ptr, libtorch's order",
          "[everyday_nn][serialization]") {
  manual_seed(5);
  auto net = std::make_shared<CloneNet>(4);
  TempFile file("net.safetensors");
  save(net, file.path);
  auto other = std::make_shared<CloneNet>(4);
  CHECK(state_values(*other) != state_values(*net));
  load(other, file.path);
  CHECK(state_values(*other) == state_values(*net));
  // With metadata; a shared_ptr to a built-in layer converts too.
  auto lin = std::make_shared<nn::Linear>(2, 2);
  save(lin, file.path, {{"epoch", "3"}});
  CHECK(safetensors::read_metadata(file.path).at("epoch") == "3");
  std::shared_ptr<nn::Module> none;
  CHECK_THROWS_WITH(save(none, file.path), Contains("[save]") && Contains("null shared_ptr"));
  CHECK_THROWS_WITH(load(std::shared_ptr<nn::Linear>(), file.path),
                    Contains("[load]") && Contains("null shared_ptr"));
  // Load errors are the existing ones: another model's file.
  CHECK_THROWS_WITH(load(net, file.path), Contains("[load]") && Contains("missing keys"));
}

// ==== GroupedLinear batched 3-D form ============================================================

TEST_CASE("everyday nn: GroupedLinear on [G, N, in] matches the per-group loop",
          "[everyday_nn][grouped_linear]") {
  manual_seed(6);
  for (Dtype dtype : {kFloat32, kFloat64}) {
    for (bool bias : {true, false}) {
      INFO(dtype_name(dtype) << " bias " << bias);
      nn::GroupedLinear gl(std::vector<int64_t>(3, 4), std::vector<int64_t>(3, 5), bias);
      gl.to(dtype);
      // A non-contiguous input: [G, N, in] as a transposed view of [G, in, N].
      const Tensor base = randn({3, 4, 6}, dtype);
      Tensor x = base.transpose(1, 2).detach().requires_grad_();
      Tensor y = gl.forward(x);
      REQUIRE(y.shape() == Shape{3, 6, 5});
      const Tensor r = randn({3, 6, 5}, dtype);
      (y * r).sum().backward();
      std::vector<std::vector<double>> grads;
      for (const Tensor& p : gl.parameters()) grads.push_back(values(p.grad()));
      const std::vector<double> gx = values(x.grad());

      // The oracle: the list form, group by group, on copies of the rows.
      gl.zero_grad(true);
      std::vector<Tensor> xs;
      for (int64_t g = 0; g < 3; ++g)
        xs.push_back(x.detach().select(0, g).clone().requires_grad_());
      std::vector<Tensor> ys = gl.forward(xs);
      Tensor loss = scalar_tensor(0, dtype);
      for (int64_t g = 0; g < 3; ++g) {
        const double tol = dtype == kFloat64 ? 1e-12 : 1e-5;
        const auto got = values(y.select(0, g)), want = values(ys[g]);
        for (size_t i = 0; i < got.size(); ++i) CHECK(std::abs(got[i] - want[i]) <= tol);
        loss = loss + (ys[g] * r.select(0, g)).sum();
      }
      loss.backward();
      const double tol = dtype == kFloat64 ? 1e-12 : 1e-4;
      size_t k = 0;
      for (const Tensor& p : gl.parameters()) {
        const auto want = values(p.grad());
        for (size_t i = 0; i < want.size(); ++i) CHECK(std::abs(grads[k][i] - want[i]) <= tol);
        ++k;
      }
      for (int64_t g = 0; g < 3; ++g) {
        const auto want = values(xs[g].grad());
        const auto got = values(x.grad().select(0, g));
        for (size_t i = 0; i < want.size(); ++i) CHECK(std::abs(got[i] - want[i]) <= tol);
      }
      (void)gx;
    }
  }
  // N = 0: an empty batch gives an empty output at once.
  nn::GroupedLinear gl({2, 2}, {3, 3});
  CHECK(gl.forward(zeros({2, 0, 2})).shape() == Shape{2, 0, 3});
}

TEST_CASE("everyday nn: GroupedLinear's batched form matches finite differences",
          "[everyday_nn][grouped_linear]") {
  manual_seed(7);
  nn::GroupedLinear gl({3, 3}, {2, 2});
  gl.to(kFloat64);
  Tensor x = randn({2, 4, 3}, kFloat64).requires_grad_();
  const Tensor r = randn({2, 4, 2}, kFloat64);
  (gl.forward(x) * r).sum().backward();
  auto loss = [&] {
    NoGradGuard no_grad;
    return (gl.forward(x) * r).sum().item<double>();
  };
  std::vector<Tensor> checked = gl.parameters();
  checked.push_back(x);
  test::check_central_differences(checked, loss);  // steps the module's own storage in place
}

TEST_CASE("everyday nn: GroupedLinear's batched form rejects bad shapes",
          "[everyday_nn][grouped_linear][errors]") {
  nn::GroupedLinear gl({4, 4}, {3, 3});
  CHECK_THROWS_WITH(gl.forward(zeros({2, 4})),
                    Contains("[GroupedLinear] the batched input must be 3-D [G=2, N, "
                             "in_features=4], got float32 [2, 4] (2 groups of weight [3, 4])"));
  CHECK_THROWS_WITH(gl.forward(zeros({3, 5, 4})),
                    Contains("[GroupedLinear] the batched input must be 3-D [G=2, N, "
                             "in_features=4], got float32 [3, 5, 4]"));
  CHECK_THROWS_WITH(gl.forward(zeros({2, 5, 3})), Contains("got float32 [2, 5, 3]"));
  CHECK_THROWS_WITH(gl.forward(zeros({2, 5, 4}, kFloat64)),
                    Contains("[GroupedLinear] input is float64 but the weights are float32"));
  CHECK_THROWS_WITH(gl.forward(Tensor()), Contains("[GroupedLinear] input is an undefined tensor"));
  nn::GroupedLinear ragged({4, 2}, {3, 3});
  CHECK_THROWS_WITH(ragged.forward(zeros({2, 5, 4})),
                    Contains("[GroupedLinear] the batched form forward(x [G, N, in]) needs equal "
                             "in_features and equal out_features across groups, got in_features "
                             "[4, 2] and out_features [3, 3]"));
  // forward({x}) stays the list form.
  nn::GroupedLinear one({4}, {3});
  CHECK(one.forward({zeros({5, 4})}).size() == 1);
}

// ==== errors raised inside a layer name the layer ================================================

TEST_CASE("everyday nn: layer errors name the layer, the rule and the shapes",
          "[everyday_nn][errors]") {
  nn::Linear lin(4, 3);
  CHECK_THROWS_WITH(lin.forward(zeros({2, 4}, kFloat64)),
                    Contains("[Linear] input is float64 but the weight is float32 (input float64 "
                             "[2, 4], weight float32 [3, 4])"));
  CHECK_THROWS_WITH(lin.forward(zeros({2, 4}, kInt64)),
                    Contains("[Linear] input is int64 but the weight is float32"));
  CHECK_THROWS_WITH(lin.forward(zeros({2, 5})),
                    Contains("[Linear] input must be [*, in_features=4], got 5 features in its "
                             "last dim (input float32 [2, 5], weight float32 [3, 4])"));
  CHECK_THROWS_WITH(lin.forward(scalar_tensor(1.0)),
                    Contains("[Linear] input must be [*, in_features=4], got a 0-dim tensor"));
  CHECK_THROWS_WITH(lin.forward(Tensor()), Contains("[Linear] input is an undefined tensor"));
  CHECK_THROWS_WITH(F::linear(zeros({2, 4}, kFloat64), lin.weight),
                    Contains("[linear] input is float64 but weight is float32"));

  nn::Embedding emb(10, 3);
  CHECK_THROWS_WITH(emb.forward(tensor<int64_t>({1, 10}, {2})),
                    Contains("[Embedding] index 10 is out of range for num_embeddings=10 (indices "
                             "int64 [2], weight float32 [10, 3])"));
  CHECK_THROWS_WITH(emb.forward(tensor<int32_t>({-1}, {1})),
                    Contains("[Embedding] index -1 is out of range for num_embeddings=10"));
  CHECK_THROWS_WITH(emb.forward(zeros({2})),
                    Contains("[Embedding] indices must be Int64 or Int32, got float32 [2]"));
  CHECK_THROWS_WITH(emb.forward(Tensor()), Contains("[Embedding] indices is an undefined tensor"));
  CHECK_THROWS_WITH(F::embedding(tensor<int64_t>({12}, {1}), emb.weight),
                    Contains("[embedding] index 12 is out of range for num_embeddings=10"));
  CHECK(emb.forward(zeros({0}, kInt64)).shape() == Shape{0, 3});

  nn::LayerNorm ln(Shape{2, 3});
  CHECK_THROWS_WITH(ln.forward(zeros({4, 3, 2})),
                    Contains("[LayerNorm] input must end in normalized_shape [2, 3] ([*, 2, 3]), "
                             "got float32 [4, 3, 2]"));
  CHECK_THROWS_WITH(ln.forward(zeros({3})), Contains("[LayerNorm] input must end in"));
  CHECK_THROWS_WITH(ln.forward(zeros({2, 3}, kInt32)),
                    Contains("[LayerNorm] input must be floating-point, got int32 [2, 3]"));
  CHECK_THROWS_WITH(ln.forward(zeros({2, 3}, kFloat64)),
                    Contains("[LayerNorm] input is float64 but the weight is float32 (input "
                             "float64 [2, 3], weight float32 [2, 3])"));
  CHECK_THROWS_WITH(ln.forward(Tensor()), Contains("[LayerNorm] input is an undefined tensor"));

  nn::Dropout drop(0.5);
  CHECK_THROWS_WITH(drop.forward(zeros({2}, kInt64)),
                    Contains("[Dropout] input must be floating-point, got int64 [2]"));
  CHECK_THROWS_WITH(drop.forward(Tensor()), Contains("[Dropout] input is an undefined tensor"));

  nn::GroupedLinear gl({4, 2}, {3, 3});
  CHECK_THROWS_WITH(gl.forward({zeros({5, 4}), zeros({5, 2}, kFloat64)}),
                    Contains("[GroupedLinear] group 1: input is float64 but weight.1 is float32"));

  nn::MultiheadAttention mha(4, 2);
  CHECK_THROWS_WITH(mha.forward(zeros({3, 4}), zeros({3, 4}), zeros({3, 4})),
                    Contains("[MultiheadAttention] query must be 3-D"));
  const Tensor q64 = zeros({1, 3, 4}, kFloat64);
  CHECK_THROWS_WITH(
      mha.forward(q64, q64, q64),
      Contains("[MultiheadAttention] in_proj_weight is float32 but query is float64"));

  nn::MoEFeedForward moe(4, 6, 3, 2);
  CHECK_THROWS_WITH(moe.forward(zeros({2, 4}, kInt64)),
                    Contains("[MoEFeedForward] input is int64 but a parameter is float32"));
  CHECK_THROWS_WITH(
      moe.forward(zeros({2, 5})),
      Contains("[MoEFeedForward] input must be [*, 4] (embed_dim), got float32 [2, 5]"));

  // Sequential says which of its modules failed, then that module's own message.
  nn::Sequential seq(std::make_shared<nn::Linear>(4, 3), gg::relu,
                     std::make_shared<nn::Linear>(2, 1));
  CHECK_THROWS_WITH(seq.forward(zeros({2, 4})),
                    Contains("[Sequential] module 2 (gg::nn::Linear): [Linear] input must be [*, "
                             "in_features=2], got 3 features in its last dim"));
}

// ==== the docs' ModuleList section ===============================================================

TEST_CASE("everyday nn: the ModuleList ensemble of docs/training.md trains",
          "[everyday_nn][docs]") {
  auto ensemble = std::make_shared<Ensemble>(3, 8);
  CHECK(names_of(ensemble->named_parameters()).at(4) == "models.1.0.weight");
  CHECK(printed(*ensemble).rfind("Ensemble(\n  (models): gg::nn::ModuleList(\n    (0): "
                                 "gg::nn::Sequential(\n      (0): gg::nn::Linear(in_features=1, "
                                 "out_features=8, bias=true)\n      (1): gg::nn::Functional()\n",
                                 0) == 0);
  const auto [first, last] = train_ensemble(200);
  CHECK(last < 0.2 * first);
}
