// `tools/bench --train-dump DIR`: the train workload's starting point for tools/train_pytorch.py,
// which builds the same model in PyTorch from it (see write_train_dump in train.hpp).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <groupgrad/groupgrad.hpp>
#include <nlohmann/json.hpp>

#include "train.hpp"

namespace gg::bench {

namespace {
// Writes `text` to `path` through a temporary file in the same directory and a rename, so a
// reader never sees half a file.
void write_atomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + fmt::format(".tmp{}", getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out.good()) throw std::runtime_error("[bench] cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("[bench] cannot rename a temporary file to " + path.string());
  }
}
}  // namespace

nlohmann::json settings_json(const TrainSetup& s) {
  return {{"vocab", s.vocab},
          {"seq_len", s.seq_len},
          {"embed", s.embed},
          {"heads", s.heads},
          {"layers", s.layers},
          {"experts", s.experts},
          {"top_k", s.top_k},
          {"hidden", s.hidden},
          {"lr", s.lr},
          {"betas", {s.beta1, s.beta2}},
          {"weight_decay", s.weight_decay},
          {"clip", s.clip},
          {"aux_coef", s.aux_coef},
          {"ignore_index", s.ignore_index},
          {"batch", s.batch},
          {"width", s.width}};
}

void write_train_dump(const TrainSetup& s, double initial_loss, const std::string& dir) {
  const std::filesystem::path root(dir);
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec || !std::filesystem::is_directory(root))
    throw std::runtime_error("[bench] --train-dump: cannot create the directory " + dir);

  gg::nn::NamedTensors params;
  for (const NamedArray& a : s.params) params.emplace_back(a.name, gg::tensor(a.data, a.shape));
  gg::safetensors::write((root / "params.safetensors").string(), params,
                         {{"written_by", "groupgrad tools/bench --train-dump"}});
  gg::safetensors::write((root / "batch.safetensors").string(),
                         {{"input", gg::tensor(s.input, {s.batch, s.width})},
                          {"target", gg::tensor(s.target, {s.batch, s.width})}});

  nlohmann::json names = nlohmann::json::array();
  for (const NamedArray& a : s.params) names.push_back(a.name);
  const nlohmann::json j = {{"format", "groupgrad train dump 1"},
                            {"params_file", "params.safetensors"},
                            {"batch_file", "batch.safetensors"},
                            {"param_names", names},  // groupgrad's order (named_parameters)
                            {"initial_loss", initial_loss},
                            {"settings", settings_json(s)}};
  // Written last: its presence says the two tensor files beside it are complete.
  write_atomically(root / "train.json", j.dump(2) + "\n");
}

}  // namespace gg::bench
