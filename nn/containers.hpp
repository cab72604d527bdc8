#pragma once
// ModuleList and ModuleDict, after libtorch's torch::nn::ModuleList / ModuleDict (and PyTorch's
// nn.ModuleList / nn.ModuleDict): containers that register what they hold, so its parameters
// appear in parameters(), named_parameters() ("blocks.0.weight"), save/load, train/eval, clone
// and printing. Neither has a forward: the owning module decides how to call what they hold.
//
//   auto models = std::make_shared<gg::nn::ModuleList>();
//   for (int i = 0; i < 4; ++i) models->push_back(std::make_shared<gg::nn::Linear>(8, 1));
//   for (const auto& m : *models) ...                    // shared_ptr<Module>, in order
//   models->at<gg::nn::Linear>(2).forward(x);            // typed access (gg::Error if not Linear)
#include <cstddef>
#include <memory>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "module.hpp"

namespace gg::nn {

// Modules in order, registered as children "0", "1", ...
class ModuleList : public Module {
 public:
  using Iterator = std::vector<std::shared_ptr<Module>>::const_iterator;

  ModuleList() = default;
  // ModuleList(a, b, c): the given modules in order.
  template <class... Ms>
  requires(sizeof...(Ms) > 0) explicit ModuleList(std::shared_ptr<Ms>... modules) {
    (push_back(std::move(modules)), ...);
  }

  // Appends a module (any shared_ptr to a Module subclass converts); registered as "<size()>".
  void push_back(std::shared_ptr<Module> module);
  void append(std::shared_ptr<Module> module) { push_back(std::move(module)); }  // Python's name
  // Appends every module of `other` (the same modules, not copies).
  void extend(const ModuleList& other);
  // Appends every module of a container of shared_ptrs to modules.
  template <class Container>
  void extend(const Container& modules) {
    for (const auto& m : modules) push_back(m);
  }
  // Inserts before position `index` (0 <= index <= size()); later modules are renamed so that the
  // children stay named "0", "1", ... in list order.
  void insert(size_t index, std::shared_ptr<Module> module);

  size_t size() const { return modules_.size(); }
  bool empty() const { return modules_.empty(); }
  // The module at `index` (gg::Error if index >= size()).
  std::shared_ptr<Module> operator[](size_t index) const { return ptr(index); }
  std::shared_ptr<Module> ptr(size_t index) const;
  // The module at `index` as a T: gg::Error naming both classes if it is not a T.
  template <class T>
  std::shared_ptr<T> ptr(size_t index) const {
    auto m = ptr(index);
    auto typed = std::dynamic_pointer_cast<T>(m);
    if (typed == nullptr) wrong_type(index, *m, typeid(T));
    return typed;
  }
  // libtorch's at<T>: a reference to the module at `index` as a T.
  template <class T>
  T& at(size_t index) const {
    return *ptr<T>(index);
  }

  Iterator begin() const { return modules_.begin(); }
  Iterator end() const { return modules_.end(); }

  // "gg::nn::ModuleList"; the children follow under operator<<.
  void pretty_print(std::ostream& stream) const override;
  // A ModuleList of clones of every module.
  std::shared_ptr<Module> clone() const override;

 private:
  [[noreturn]] void wrong_type(size_t index, const Module& m, const std::type_info& want) const;
  std::vector<std::shared_ptr<Module>> modules_;
};

// Modules by string key, in insertion order (keys are the children's names: no dots, not empty).
class ModuleDict : public Module {
 public:
  using Item = std::pair<std::string, std::shared_ptr<Module>>;
  using Iterator = std::vector<Item>::const_iterator;

  ModuleDict() = default;
  // From (key, module) pairs in order; a key given twice is a gg::Error.
  explicit ModuleDict(const std::vector<Item>& items);

  // Adds `module` under a new `key` (gg::Error naming the key if it is already present: use
  // update() to replace). libtorch keeps its insert private and replacing; update() is that.
  void insert(const std::string& key, std::shared_ptr<Module> module);
  // libtorch's/PyTorch's update: each (key, module) replaces the module under an existing key
  // (in its place) or is added at the end.
  void update(const std::vector<Item>& items);
  void update(const ModuleDict& other) { update(other.items()); }

  // The module under `key` (gg::Error naming the key and listing the keys if absent).
  std::shared_ptr<Module> operator[](const std::string& key) const;
  // The module under `key` as a T: gg::Error naming both classes if it is not a T.
  template <class T>
  std::shared_ptr<T> ptr(const std::string& key) const {
    auto m = (*this)[key];
    auto typed = std::dynamic_pointer_cast<T>(m);
    if (typed == nullptr) wrong_type(key, *m, typeid(T));
    return typed;
  }
  template <class T>
  T& at(const std::string& key) const {
    return *ptr<T>(key);
  }
  bool contains(const std::string& key) const;
  // Removes the module under `key` and returns it (gg::Error naming the key if absent).
  std::shared_ptr<Module> pop(const std::string& key);
  void clear();

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::vector<std::string> keys() const;
  std::vector<std::shared_ptr<Module>> values() const;
  const std::vector<Item>& items() const { return items_; }
  Iterator begin() const { return items_.begin(); }
  Iterator end() const { return items_.end(); }

  // "gg::nn::ModuleDict"; the children follow under operator<<.
  void pretty_print(std::ostream& stream) const override;
  // A ModuleDict of clones of every module, under the same keys in the same order.
  std::shared_ptr<Module> clone() const override;

 private:
  [[noreturn]] void wrong_type(const std::string& key, const Module& m,
                               const std::type_info& want) const;
  std::vector<Item>::iterator find(const std::string& key);
  std::vector<Item>::const_iterator find(const std::string& key) const;
  std::vector<Item> items_;
};

}  // namespace gg::nn
