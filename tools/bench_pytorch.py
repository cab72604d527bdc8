#!/usr/bin/env python3
"""Times PyTorch 2.x on tools/bench's workloads, on the CPU: torch.nn.functional.grouped_mm, a loop
of torch.mm (addmm / linear with bias), torch.bmm where the groups are uniform (and torch.stack +
bmm for the list of them: PyTorch has no list form), and one dense torch.mm with the same FLOPs.
Prints the table of tools/bench (median ms, GFLOPS, us/group, ratio,
peak memory) and optionally writes it as JSON.

    python3 tools/bench_pytorch.py                       # every workload, all cores
    python3 tools/bench_pytorch.py -w moe --threads 1
    ./build/tools/bench --json gg.json && python3 tools/bench_pytorch.py --ours gg.json

The ratio column is each variant's median time over F.grouped_mm's in this run (over the loop of
mm where grouped_mm cannot express the workload). With --ours FILE (tools/bench --json output) a
second ratio divides by groupgrad's median from that file: a different process and moment, so
weaker evidence than tools/bench's own side-by-side ratios. Variants of a workload are timed in
alternating rounds, as tools/bench does. Forms F.grouped_mm rejects on the CPU are reported as
such, with PyTorch's error, not replaced by something else.
"""

import argparse
import ctypes
import gc
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

MOE_ROWS = [1024, 768, 640, 512, 448, 320, 256, 128]


# ---- workloads (those of tools/bench, listed at the head of tools/bench/bench.cpp) -----------
def workloads():
    out = []
    for dtype in (torch.float32, torch.bfloat16):
        for backward in (False, True):
            name = "moe {} {}".format("f32" if dtype == torch.float32 else "bf16",
                                      "fwd+bwd" if backward else "fwd")
            out.append(dict(id="moe", name=name, groups=[(m, 512, 1024) for m in MOE_ROWS],
                            dtype=dtype, backward=backward, packed=True, bias=False))
    for wid, groups, bias in (("heads", [(320, 64, 64)] * 8, False),
                              ("tiny", [(16, 32, 32)] * 64, False),
                              ("mixed", [(100, 50, 64), (100, 75, 128), (100, 30, 32)], True)):
        for backward in (False, True):
            name = "{} f32 {}{}".format(wid, "fwd+bwd" if backward else "fwd",
                                        " (bias)" if bias else "")
            out.append(dict(id=wid, name=name, groups=groups, dtype=torch.float32,
                            backward=backward, packed=False, bias=bias))
    return out


def flops_of(w):
    f = sum(2.0 * m * k * n for m, k, n in w["groups"])
    return 3 * f if w["backward"] else f


def uniform(w):
    m0, k0, n0 = w["groups"][0]
    return all(g == (m0, k0, n0) for g in w["groups"])


# ---- variants: each returns a callable doing one call's work ------------------------------------
def with_backward(w, forward):
    """Wraps forward() -> list of outputs into one call: forward, and backward from ones
    gradients made once (as tools/bench does)."""
    if not w["backward"]:
        def run():
            with torch.no_grad():
                forward()
        return run
    with torch.no_grad():
        grads = [torch.ones_like(y) for y in forward()]

    def run():
        torch.autograd.backward(forward(), grads)
    return run


def grouped_mm_bias_status():
    """Whether F.grouped_mm takes bias= on the CPU, tried on a small uniform problem."""
    try:
        F.grouped_mm(torch.randn(4, 8), torch.randn(2, 8, 4),
                     offs=torch.tensor([2, 4], dtype=torch.int32), bias=torch.randn(2, 4))
        return "bias= works on CPU"
    except (RuntimeError, NotImplementedError) as e:
        return "bias= raises on CPU: '{}'".format(str(e).strip().splitlines()[0])


# tools/bench's name for groupgrad's stacked 3D x 3D call, and the peers that also multiply
# stacked tensors (compared with it).
STACKED_GROUPGRAD = "groupgrad, 3D x 3D"
STACKED_PEERS = ("F.grouped_mm (3D x 3D)", "torch.bmm")


def make_variants(w):
    """(name, callable or None, why-not) for each variant of workload w."""
    dtype, grad = w["dtype"], w["backward"]
    groups = w["groups"]
    variants = []

    def randn(*shape):
        return torch.randn(*shape, dtype=dtype).requires_grad_(grad)

    suffix = " + autograd" if grad else ""
    if w["packed"]:
        k, n = groups[0][1], groups[0][2]
        x = randn(sum(m for m, _, _ in groups), k)
        wt = randn(len(groups), k, n)
        rows = [m for m, _, _ in groups]
        offs = torch.tensor(rows, dtype=torch.int32).cumsum(0).to(torch.int32)
        variants.append(("F.grouped_mm (2D x 3D, offs)" + suffix,
                         lambda: [F.grouped_mm(x, wt, offs=offs)]))

        def loop():
            return [torch.mm(a, b) for a, b in zip(x.split(rows), wt.unbind(0))]
        variants.append(("loop of torch.mm" + suffix, loop))
        xd, wd = randn(x.shape[0], k), randn(k, n)
        variants.append(("dense torch.mm, same FLOPs" + suffix, lambda: [torch.mm(xd, wd)]))
        return variants

    xs = [randn(m, k) for m, k, _ in groups]
    ws = [randn(k, n) for _, k, n in groups]
    if w["bias"]:
        bs = [randn(n) for _, _, n in groups]
        wts = [randn(n, k) for _, k, n in groups]
        variants.append(("F.grouped_mm" + suffix, None,
                         "not supported: the groups differ in K and N (one grouped_mm call "
                         "needs one K and N); " + grouped_mm_bias_status()))
        variants.append(("loop of torch.addmm" + suffix,
                         lambda: [torch.addmm(b, a, c) for a, c, b in zip(xs, ws, bs)]))
        variants.append(("loop of F.linear" + suffix,
                         lambda: [F.linear(a, c, b) for a, c, b in zip(xs, wts, bs)]))
        return variants
    xb = torch.stack(xs).detach().requires_grad_(grad)
    wb = torch.stack(ws).detach().requires_grad_(grad)
    variants.append(("F.grouped_mm (3D x 3D)" + suffix, lambda: [F.grouped_mm(xb, wb)]))
    variants.append(("loop of torch.mm" + suffix,
                     lambda: [torch.mm(a, b) for a, b in zip(xs, ws)]))
    variants.append(("torch.bmm" + suffix, lambda: [torch.bmm(xb, wb)]))
    # PyTorch has no list form: a list of equal groups goes through stacked copies.
    variants.append(("torch.stack + bmm + unbind" + suffix,
                     lambda: list(torch.bmm(torch.stack(xs), torch.stack(ws)).unbind(0))))
    if w["id"] == "heads":
        xd = randn(sum(m for m, _, _ in groups), groups[0][1])
        wd = randn(groups[0][1], groups[0][2])
        variants.append(("dense torch.mm, same FLOPs" + suffix, lambda: [torch.mm(xd, wd)]))
    return variants


# ---- timing and memory ------------------------------------------------------------------------
def elapsed_ms(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) * 1e3


def time_interleaved(fns, warmup, reps, min_sample_ms=2.0):
    """Medians of one call per fn: warm-up, then `reps` rounds running every fn in turn; a sample
    averages enough back-to-back calls to last about min_sample_ms."""
    inner = []
    for fn in fns:
        per_call = elapsed_ms(fn, max(warmup, 1)) / max(warmup, 1)
        inner.append(int(min(10000, max(1, -(-min_sample_ms // max(per_call, 1e-6))))))
    samples = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            samples[i].append(elapsed_ms(fn, inner[i]) / inner[i])
    return [dict(median_ms=statistics.median(s), min_ms=min(s), samples=reps,
                 calls_per_sample=inner[i]) for i, s in enumerate(samples)]


def _status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def rss_peak_of(fn):
    """Resident-set high-water mark during one call over the resident set before it, as
    tools/bench measures it (VmHWM reset through /proc/self/clear_refs); None where unavailable."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _status_bytes("VmRSS")
    fn()
    after = _status_bytes("VmHWM")
    return None if before is None or after is None else after - before


# ---- output ------------------------------------------------------------------------------------
def mib(b):
    return "-" if b is None else "{:.1f}".format(b / 1048576.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-w", "--workload", action="append",
                        choices=["moe", "heads", "tiny", "mixed"],
                        help="workloads to run (default: all); repeat for several")
    parser.add_argument("--reps", type=int, default=30, help="timed samples per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per variant")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch.set_num_threads (default: all cores)")
    parser.add_argument("--bf16-reps", type=int, help="timed samples for the bf16 workloads, "
                        "with one warm-up call (below AVX512_CORE PyTorch's bf16 matmul is a "
                        "scalar loop: seconds per call)")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--ours", help="tools/bench --json output: adds a ratio to groupgrad's "
                        "medians from that (separate) run")
    args = parser.parse_args()
    if args.reps < 1 or args.warmup < 0 or args.threads < 1 or (args.bf16_reps or 1) < 1:
        parser.error("--reps, --bf16-reps and --threads must be >= 1, --warmup >= 0")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = {}  # workload -> {groupgrad's variant: median ms}
    if args.ours:
        with open(args.ours) as f:
            for r in json.load(f)["rows"]:
                if r["variant"] in ("groupgrad", STACKED_GROUPGRAD):
                    ours.setdefault(r["workload"], {})[r["variant"]] = r["median_ms"]

    about = {
        "torch": torch.__version__,
        "threads": "{} (OMP_WAIT_POLICY={})".format(torch.get_num_threads(),
                                                   os.environ.get("OMP_WAIT_POLICY", "unset")),
        "load before": "{:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()),
        "timing": "median of {} samples per variant after {} warm-up calls, variants "
                  "alternating".format(args.reps, args.warmup),
        "backends": "MKL {}, oneDNN {}".format(torch.backends.mkl.is_available(),
                                               torch.backends.mkldnn.is_available()),
    }
    rows = []
    for w in workloads():
        if args.workload and w["id"] not in args.workload:
            continue
        flops, ngroups = flops_of(w), len(w["groups"])
        runnable = []
        for v in make_variants(w):
            name, fwd = v[0], v[1]
            if fwd is None:
                rows.append(dict(workload=w["name"], variant=name, unsupported=v[2]))
                continue
            try:
                run = with_backward(w, fwd)
                run()
            except (RuntimeError, NotImplementedError) as e:
                first = str(e).strip().splitlines()[0]
                rows.append(dict(workload=w["name"], variant=name,
                                 unsupported="not supported on CPU: " + first))
                continue
            runnable.append((name, run))
        bf16 = w["dtype"] == torch.bfloat16
        reps = args.bf16_reps if bf16 and args.bf16_reps else args.reps
        warmup = min(args.warmup, 1) if bf16 and args.bf16_reps else args.warmup
        timings = time_interleaved([r for _, r in runnable], warmup, reps)
        for (name, run), t in zip(runnable, timings):
            rows.append(dict(workload=w["name"], variant=name, flops=flops, groups=ngroups,
                             rss_peak_bytes=rss_peak_of(run), **t))
        print("done: " + w["name"], file=sys.stderr, flush=True)
    about["load after"] = "{:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg())

    # Ratios: over F.grouped_mm's median in this run (the loop's where grouped_mm did not run).
    base = {}
    for r in rows:
        if "median_ms" in r and (r["variant"].startswith("F.grouped_mm") or
                                 (r["workload"] not in base and r["variant"].startswith("loop"))):
            base.setdefault(r["workload"], (r["variant"], r["median_ms"]))
    for r in rows:
        if "median_ms" not in r:
            continue
        r["gflops"] = r["flops"] / (r["median_ms"] * 1e6)
        r["us_per_group"] = r["median_ms"] * 1e3 / r["groups"]
        r["ratio_base"] = base[r["workload"]][0]
        r["time_over_base"] = r["median_ms"] / base[r["workload"]][1]
        if r["workload"] in ours:
            # Like for like: peers that multiply stacked tensors against groupgrad's 3D x 3D
            # call where tools/bench ran one, the others against groupgrad's own form.
            mine = ours[r["workload"]]
            stacked = r["variant"].startswith(STACKED_PEERS) and STACKED_GROUPGRAD in mine
            r["groupgrad_variant"] = STACKED_GROUPGRAD if stacked else "groupgrad"
            r["time_over_groupgrad"] = r["median_ms"] / mine[r["groupgrad_variant"]]

    for k, v in about.items():
        print("{:<18} {}".format(k + ":", v))
    print("\n{:<26} {:<38} {:>10} {:>8} {:>10} {:>9} {:>9} {:>8}".format(
        "workload", "variant", "median ms", "GFLOPS", "us/group", "vs base",
        "peer/gg" if ours else "", "RSS MiB"))
    last = None
    for r in rows:
        if last is not None and r["workload"] != last:
            print()
        last = r["workload"]
        if "median_ms" not in r:
            print("{:<26} {:<38} {}".format(r["workload"], r["variant"], r["unsupported"]))
            continue
        gg = "{:.2f}x".format(r["time_over_groupgrad"]) if "time_over_groupgrad" in r else ""
        print("{:<26} {:<38} {:>10.3f} {:>8.1f} {:>10.2f} {:>9} {:>9} {:>8}".format(
            r["workload"], r["variant"], r["median_ms"], r["gflops"], r["us_per_group"],
            "{:.2f}x".format(r["time_over_base"]), gg, mib(r["rss_peak_bytes"])))
    print("\nvs base: median time over F.grouped_mm's in this run (over the loop of mm where "
          "grouped_mm did not run);\nabove 1: slower than grouped_mm. RSS MiB: resident-set "
          "high-water mark during one call over the resident set before it.")
    if ours:
        print("peer/gg: median time over groupgrad's from {} (a separate run; above 1: groupgrad "
              "is faster); F.grouped_mm (3D x 3D) and torch.bmm over groupgrad's 3D x 3D row "
              "where it has one, the rest over its own form.".format(args.ours))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(about=about, rows=rows), f, indent=2)
        print("wrote " + args.json)


if __name__ == "__main__":
    main()
