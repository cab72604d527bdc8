#include "nn/containers.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/error.hpp"

namespace gg::nn {

// ==== ModuleList =================================================================================

void ModuleList::push_back(std::shared_ptr<Module> module) {
  GG_CHECK(module != nullptr, "[ModuleList] cannot add a null module (at index {})",
           modules_.size());
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
}

void ModuleList::extend(const ModuleList& other) {
  // A copy first: other may be this list.
  const std::vector<std::shared_ptr<Module>> modules = other.modules_;
  for (const auto& m : modules) push_back(m);
}

void ModuleList::insert(size_t index, std::shared_ptr<Module> module) {
  GG_CHECK(index <= modules_.size(),
           "[ModuleList] insert index {} is out of range for {} modules (0 to {} allowed)", index,
           modules_.size(), modules_.size());
  GG_CHECK(module != nullptr, "[ModuleList] cannot insert a null module (at index {})", index);
  if (index == modules_.size()) return push_back(std::move(module));
  // Registered at the end first (its checks run before anything moves), then the children from
  // `index` on are shifted one place so that child i is modules_[i] again.
  register_module(std::to_string(modules_.size()), module);
  modules_.insert(modules_.begin() + static_cast<std::ptrdiff_t>(index), std::move(module));
  for (size_t i = index; i < modules_.size(); ++i) replace_module(std::to_string(i), modules_[i]);
}

std::shared_ptr<Module> ModuleList::ptr(size_t index) const {
  GG_CHECK(index < modules_.size(), "[ModuleList] index {} is out of range for {} modules", index,
           modules_.size());
  return modules_[index];
}

void ModuleList::wrong_type(size_t index, const Module& m, const std::type_info& want) const {
  fail("[ModuleList] module {} is {}, not {}", index, m.name(), detail::type_name(want));
}

void ModuleList::pretty_print(std::ostream& stream) const { stream << "gg::nn::ModuleList"; }

std::shared_ptr<Module> ModuleList::clone() const {
  auto copy = std::make_shared<ModuleList>();
  for (const auto& m : modules_) copy->push_back(m->clone());
  clone_state_into(*copy, /*recurse=*/false);  // the list's own training flag
  return copy;
}

// ==== ModuleDict =================================================================================

ModuleDict::ModuleDict(const std::vector<Item>& items) {
  for (const auto& [key, module] : items) insert(key, module);
}

std::vector<ModuleDict::Item>::iterator ModuleDict::find(const std::string& key) {
  return std::find_if(items_.begin(), items_.end(),
                      [&](const Item& item) { return item.first == key; });
}

std::vector<ModuleDict::Item>::const_iterator ModuleDict::find(const std::string& key) const {
  return std::find_if(items_.begin(), items_.end(),
                      [&](const Item& item) { return item.first == key; });
}

void ModuleDict::insert(const std::string& key, std::shared_ptr<Module> module) {
  GG_CHECK(!key.empty(), "[ModuleDict] a key must not be empty");
  GG_CHECK(key.find('.') == std::string::npos,
           "[ModuleDict] key '{}' must not contain a dot (dots separate submodule names)", key);
  GG_CHECK(!contains(key),
           "[ModuleDict] key '{}' is already present; use update() to replace its module", key);
  GG_CHECK(module != nullptr, "[ModuleDict] cannot insert a null module under key '{}'", key);
  register_module(key, module);
  items_.emplace_back(key, std::move(module));
}

void ModuleDict::update(const std::vector<Item>& items) {
  for (const auto& [key, module] : items) {
    auto it = find(key);
    if (it == items_.end()) {
      insert(key, module);
      continue;
    }
    GG_CHECK(module != nullptr, "[ModuleDict] cannot put a null module under key '{}'", key);
    replace_module(key, module);
    it->second = module;
  }
}

std::shared_ptr<Module> ModuleDict::operator[](const std::string& key) const {
  auto it = find(key);
  GG_CHECK(it != items_.end(), "[ModuleDict] no module under key '{}' (keys: [{}])", key,
           fmt::join(keys(), ", "));
  return it->second;
}

bool ModuleDict::contains(const std::string& key) const { return find(key) != items_.end(); }

std::shared_ptr<Module> ModuleDict::pop(const std::string& key) {
  auto it = find(key);
  GG_CHECK(it != items_.end(), "[ModuleDict] pop: no module under key '{}' (keys: [{}])", key,
           fmt::join(keys(), ", "));
  std::shared_ptr<Module> module = std::move(it->second);
  items_.erase(it);
  unregister_module(key);
  return module;
}

void ModuleDict::clear() {
  for (const auto& [key, module] : items_) unregister_module(key);
  items_.clear();
}

std::vector<std::string> ModuleDict::keys() const {
  std::vector<std::string> out;
  for (const auto& [key, module] : items_) out.push_back(key);
  return out;
}

std::vector<std::shared_ptr<Module>> ModuleDict::values() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [key, module] : items_) out.push_back(module);
  return out;
}

void ModuleDict::wrong_type(const std::string& key, const Module& m,
                            const std::type_info& want) const {
  fail("[ModuleDict] the module under key '{}' is {}, not {}", key, m.name(),
       detail::type_name(want));
}

void ModuleDict::pretty_print(std::ostream& stream) const { stream << "gg::nn::ModuleDict"; }

std::shared_ptr<Module> ModuleDict::clone() const {
  auto copy = std::make_shared<ModuleDict>();
  for (const auto& [key, module] : items_) copy->insert(key, module->clone());
  clone_state_into(*copy, /*recurse=*/false);
  return copy;
}

}  // namespace gg::nn
