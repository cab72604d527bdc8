// The gradient checker: analytic gradients from one backward of a randomly projected scalar,
// numeric gradients from central differences taken in place through each input's strides.
#include "autograd/gradcheck_check.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "core/random.hpp"
#include "core/strided.hpp"

namespace gg::gradcheck {

namespace {

// Restores the thread's grad mode on scope exit (the checker needs recording on).
class GradModeScope {
 public:
  explicit GradModeScope(bool enabled) : previous_(GradMode::is_enabled()) {
    GradMode::set_enabled(enabled);
  }
  ~GradModeScope() { GradMode::set_enabled(previous_); }
  GradModeScope(const GradModeScope&) = delete;
  GradModeScope& operator=(const GradModeScope&) = delete;

 private:
  bool previous_;
};

// The fixed random projection L = sum_i <out_i, r_i> over the floating outputs.
struct Projection {
  std::vector<bool> used;
  std::vector<Shape> shapes;
  std::vector<Tensor> r;                 // in each output's dtype (the backward's grad_output)
  std::vector<std::vector<double>> r64;  // the same values, exactly, as doubles
};

std::vector<Tensor> call_forward(const CheckCase& c, const std::vector<Tensor>& xs,
                                 const CaseOptions& co) {
  std::vector<Tensor> outs = c.forward(xs, co);
  GG_CHECK(!outs.empty(), "[gradcheck] case '{}' produced no outputs", c.name);
  return outs;
}

Projection make_projection(const CheckCase& c, const std::vector<Tensor>& outs, Generator& gen) {
  NoGradGuard no_grad;
  Projection p;
  for (const Tensor& out : outs) {
    bool used = out.defined() && out.is_floating_point();
    p.used.push_back(used);
    p.shapes.push_back(used ? out.shape() : Shape{});
    if (!used) {
      p.r.emplace_back();
      p.r64.emplace_back();
      continue;
    }
    std::vector<double> v(static_cast<size_t>(out.numel()));
    for (double& x : v) x = gen.normal();
    Tensor r = tensor<double>(v, out.shape()).to(out.dtype());
    p.r64.push_back(r.to(kFloat64).to_vector<double>());
    p.r.push_back(r);
  }
  GG_CHECK(std::find(p.used.begin(), p.used.end(), true) != p.used.end(),
           "[gradcheck] case '{}' has no floating outputs to differentiate", c.name);
  return p;
}

void check_outputs(const CheckCase& c, const std::vector<Tensor>& outs, const Projection& p) {
  GG_CHECK(outs.size() == p.used.size(), "[gradcheck] case '{}' returned {} outputs, earlier {}",
           c.name, outs.size(), p.used.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    if (!p.used[i]) continue;
    GG_CHECK(outs[i].defined() && outs[i].shape() == p.shapes[i],
             "[gradcheck] case '{}': output {} changed shape between evaluations ({} vs {})",
             c.name, i, outs[i].defined() ? shape_str(outs[i].shape()) : "undefined",
             shape_str(p.shapes[i]));
  }
}

double project(const CheckCase& c, const std::vector<Tensor>& outs, const Projection& p) {
  check_outputs(c, outs, p);
  double total = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    if (!p.used[i]) continue;
    std::vector<double> v = outs[i].to(kFloat64).to_vector<double>();
    for (size_t j = 0; j < v.size(); ++j) total += v[j] * p.r64[i][j];
  }
  return total;
}

// One backward of L; returns the gradient of every differentiable input as doubles.
std::vector<std::vector<double>> analytic_grads(const CheckCase& c, const std::vector<Tensor>& outs,
                                                const Projection& p, const std::vector<Tensor>& xs,
                                                const std::vector<bool>& diff) {
  check_outputs(c, outs, p);
  std::vector<Tensor> roots, grad_roots;
  for (size_t i = 0; i < outs.size(); ++i) {
    if (!p.used[i] || !outs[i].requires_grad()) continue;
    roots.push_back(outs[i]);
    grad_roots.push_back(p.r[i].dtype() == outs[i].dtype() ? p.r[i] : p.r[i].to(outs[i].dtype()));
  }
  if (!roots.empty()) autograd::run_backward(roots, grad_roots, /*retain_graph=*/false);
  std::vector<std::vector<double>> grads;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!diff[i]) continue;
    Tensor g = xs[i].grad();
    if (!g.defined()) {
      grads.emplace_back(static_cast<size_t>(xs[i].numel()), 0.0);
      continue;
    }
    GG_CHECK(g.shape() == xs[i].shape(),
             "[gradcheck] case '{}': gradient of shape {} for input {} of shape {}", c.name,
             shape_str(g.shape()), i, shape_str(xs[i].shape()));
    NoGradGuard no_grad;
    grads.push_back(g.to(kFloat64).to_vector<double>());
  }
  return grads;
}

// Storage element offsets of t's elements in row-major order of its shape.
std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> offsets;
  offsets.reserve(static_cast<size_t>(t.numel()));
  for_each_strided<1>(t.shape(), {t.strides().data()}, {t.storage_offset()},
                      [&](const std::array<int64_t, 1>& o) { offsets.push_back(o[0]); });
  return offsets;
}

Shape unravel(int64_t flat, const Shape& shape) {
  Shape index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  return index;
}

// How far |a - b| = err lies outside (> 0) or inside (<= 0) the tolerance around b, in units of
// that tolerance.
double beyond(double err, double b, const Tolerance& tol) {
  double allowed = tol.atol + tol.rtol * std::abs(b);
  if (allowed > 0) return err / allowed - 1;
  return err > 0 ? std::numeric_limits<double>::infinity() : -1;
}

InputReport compare(const std::string& name, const Tensor& x, const std::vector<double>& analytic,
                    const std::vector<double>& numeric, const std::vector<double>* reference,
                    const Tolerance& tol, size_t keep) {
  InputReport r;
  r.name = name;
  r.shape = x.shape();
  r.dtype = x.dtype();
  r.tolerance = tol;
  std::vector<std::pair<double, Entry>> ranked;  // (violation, entry): the worst first
  for (size_t j = 0; j < analytic.size(); ++j) {
    double a = analytic[j], n = numeric[j];
    double err = std::abs(a - n);
    double violation = beyond(err, n, tol);
    double rel = err / std::max({std::abs(n), tol.atol, 1e-300});
    Entry e{unravel(static_cast<int64_t>(j), x.shape()), a, n};
    if (reference) {
      double ref = (*reference)[j];
      double ref_err = std::abs(a - ref);
      e.reference = ref;
      violation = std::max(violation, beyond(ref_err, ref, tol));
      rel = std::max(rel, ref_err / std::max({std::abs(ref), tol.atol, 1e-300}));
      err = std::max(err, ref_err);
    }
    e.abs_err = err;
    // NaN anywhere is a failure, never a pass by comparison.
    if (std::isnan(a) || std::isnan(n) || std::isnan(violation) || std::isnan(err) ||
        (reference && std::isnan(e.reference))) {
      violation = std::numeric_limits<double>::infinity();
      err = rel = std::numeric_limits<double>::infinity();
      e.abs_err = err;
    }
    r.max_abs_err = std::max(r.max_abs_err, err);
    r.max_rel_err = std::max(r.max_rel_err, rel);
    if (violation > 0) ++r.mismatches;
    ranked.emplace_back(violation, std::move(e));
  }
  r.passed = r.mismatches == 0;
  size_t k = std::min(keep, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k), ranked.end(),
                    [](const auto& l, const auto& rr) { return l.first > rr.first; });
  for (size_t i = 0; i < k; ++i) r.worst.push_back(std::move(ranked[i].second));
  return r;
}

std::string fmt_err(double v) { return fmt::format("{:.2e}", v); }

std::string fmt_tol(const Tolerance& t) {
  return fmt::format("atol={:g} rtol={:g} eps={:g}", t.atol, t.rtol, t.eps);
}

}  // namespace

// ---- the check -------------------------------------------------------------------------------

CaseReport run_case(const CheckCase& c, const CheckOptions& o) {
  auto start = std::chrono::steady_clock::now();
  if (o.dtype != kFloat64 && o.dtype != kFloat32)
    throw UsageError(fmt::format("[gradcheck] dtype {} is not supported: use float64 or float32",
                                 dtype_name(o.dtype)));
  if (o.strict_params) check_params(c, o.params);
  Tolerance tol = case_tolerance(c, o.dtype);
  if (o.eps) tol.eps = *o.eps;
  if (o.atol) tol.atol = *o.atol;
  if (o.rtol) tol.rtol = *o.rtol;
  if (!(tol.eps > 0) || !(tol.atol >= 0) || !(tol.rtol >= 0))
    throw UsageError(
        fmt::format("[gradcheck] need eps > 0, atol >= 0 and rtol >= 0, got {}", fmt_tol(tol)));

  GradModeScope grad_on(true);
  const CaseOptions co{o.dtype, o.seed, o.params};
  manual_seed(o.seed);
  Inputs inputs = c.build(co);
  GG_CHECK(!inputs.empty(), "[gradcheck] case '{}' built no inputs", c.name);
  std::vector<Tensor> xs;
  std::vector<bool> diff;
  std::set<std::string> names;
  for (const Input& in : inputs) {
    GG_CHECK(names.insert(in.name).second, "[gradcheck] case '{}': input name '{}' repeats", c.name,
             in.name);
    GG_CHECK(in.tensor.defined(), "[gradcheck] case '{}': input '{}' is undefined", c.name,
             in.name);
    GG_CHECK(!in.differentiable || in.tensor.is_floating_point(),
             "[gradcheck] case '{}': differentiable input '{}' is {}, not floating", c.name,
             in.name, dtype_name(in.tensor.dtype()));
    Tensor x = in.tensor.detach();  // a fresh leaf over the same storage and strides
    if (in.differentiable) x.requires_grad_(true);
    xs.push_back(x);
    diff.push_back(in.differentiable);
  }
  GG_CHECK(std::find(diff.begin(), diff.end(), true) != diff.end(),
           "[gradcheck] case '{}' has no differentiable inputs", c.name);

  // Analytic: one backward of the projected scalar.
  Generator gen(o.seed * 0x9E3779B97F4A7C15ull + 0x1234567ull);
  std::vector<Tensor> outs = call_forward(c, xs, co);
  const Projection proj = make_projection(c, outs, gen);
  const std::vector<std::vector<double>> analytic = analytic_grads(c, outs, proj, xs, diff);
  outs.clear();
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!diff[i]) continue;
    xs[i].set_grad({});
    xs[i].requires_grad_(false);
  }

  // Float32 mode: the Float64 analytic gradient at the same (rounded) values.
  std::vector<std::vector<double>> reference;
  if (o.dtype != kFloat64) {
    std::vector<Tensor> x64;
    for (size_t i = 0; i < xs.size(); ++i) {
      Tensor x = xs[i].is_floating_point() ? xs[i].to(kFloat64).detach() : xs[i];
      if (diff[i]) x.requires_grad_(true);
      x64.push_back(x);
    }
    CaseOptions co64 = co;
    co64.dtype = kFloat64;
    std::vector<Tensor> outs64 = call_forward(c, x64, co64);
    Projection proj64 = proj;
    for (size_t i = 0; i < proj64.r.size(); ++i)
      if (proj64.used[i]) proj64.r[i] = tensor<double>(proj.r64[i], proj.shapes[i]);
    reference = analytic_grads(c, outs64, proj64, x64, diff);
  }

  // Numeric: central differences, stepping each element in place through its strides.
  std::vector<std::vector<double>> numeric;
  {
    NoGradGuard no_grad;
    for (size_t i = 0; i < xs.size(); ++i) {
      if (!diff[i]) continue;
      const Tensor& x = xs[i];
      void* base = x.impl()->storage->data();
      const Dtype dt = x.dtype();
      std::vector<double> grad;
      for (int64_t off : element_offsets(x)) {
        const double v = load_as_double(base, dt, off);
        store_from_double(base, dt, off, v + tol.eps);
        const double xp = load_as_double(base, dt, off);
        const double lp = project(c, call_forward(c, xs, co), proj);
        store_from_double(base, dt, off, v - tol.eps);
        const double xm = load_as_double(base, dt, off);
        const double lm = project(c, call_forward(c, xs, co), proj);
        store_from_double(base, dt, off, v);
        if (!(xp > xm))
          throw UsageError(
              fmt::format("[gradcheck] case '{}': eps={:g} is below the resolution of {} at "
                          "value {:g}; use a larger --eps",
                          c.name, tol.eps, dtype_name(dt), v));
        grad.push_back((lp - lm) / (xp - xm));
      }
      numeric.push_back(std::move(grad));
    }
  }

  CaseReport report;
  report.name = c.name;
  report.dtype = o.dtype;
  report.seed = o.seed;
  report.tolerance = tol;
  report.passed = true;
  for (size_t i = 0, k = 0; i < xs.size(); ++i) {
    if (!diff[i]) continue;
    report.inputs.push_back(compare(inputs[i].name, xs[i], analytic[k], numeric[k],
                                    reference.empty() ? nullptr : &reference[k], tol,
                                    o.worst_entries));
    report.passed = report.passed && report.inputs.back().passed;
    ++k;
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

std::string format_report(const CaseReport& report, bool verbose) {
  std::string out = fmt::format("{} ({}, seed {}): {}\n", report.name, dtype_name(report.dtype),
                                report.seed, report.passed ? "PASS" : "FAIL");
  std::vector<std::array<std::string, 6>> rows;
  rows.push_back({"input", "shape", "max abs err", "max rel err", "tolerance", "result"});
  for (const InputReport& in : report.inputs)
    rows.push_back(
        {in.name, shape_str(in.shape), fmt_err(in.max_abs_err), fmt_err(in.max_rel_err),
         fmt_tol(in.tolerance),
         in.passed ? "PASS" : fmt::format("FAIL ({} of {})", in.mismatches, numel_of(in.shape))});
  std::array<size_t, 6> width{};
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < rows[r].size(); ++c)
      out += fmt::format("  {:<{}}", rows[r][c], c + 1 < rows[r].size() ? width[c] : 0);
    out += "\n";
    if (!verbose || r == 0) continue;
    for (const Entry& e : report.inputs[r - 1].worst) {
      out += fmt::format("      {}{}: analytic {:.10g}  numeric {:.10g}", report.inputs[r - 1].name,
                         shape_str(e.index), e.analytic, e.numeric);
      if (!std::isnan(e.reference)) out += fmt::format("  float64 {:.10g}", e.reference);
      out += fmt::format("  |diff| {:.2e}\n", e.abs_err);
    }
  }
  return out;
}

}  // namespace gg::gradcheck
