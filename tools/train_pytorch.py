#!/usr/bin/env python3
"""Times one training step of examples/train_multihead's model in PyTorch 2.x, on the CPU, from the
starting point groupgrad's tools/bench wrote (the `train` workload: same shapes, same initial
parameters, same batch). One step = forward, loss (cross entropy + the MoE load-balancing loss),
backward, clip_grad_norm_, AdamW step, zero_grad(set_to_none=True), as tools/bench times it.

    ./build/tools/bench -w train --train-dump dump --json gg.json
    python3 tools/train_pytorch.py --ours gg.json      # the dump directory is read from gg.json
    python3 tools/train_pytorch.py --dump dump --threads 1 --json pt.json

The model, written with torch.nn as groupgrad's examples/train/model.hpp is:
    x = tok_emb(tokens) + pos_emb(positions)
    N blocks:  x = x + nn.MultiheadAttention(LayerNorm(x), causal, batch_first)
               x = x + MoE(LayerNorm(x)): softmax router, top-k, gates renormalised to sum to 1,
                   the (token, slot) pairs stably sorted by expert, per expert
                   linear -> gelu (erf) -> linear, the gated outputs summed back per token
    logits = head(LayerNorm(x)); loss = cross_entropy + aux_coef / layers * sum of the blocks'
    Switch load-balancing losses.
Variants (each its own copy of the model and optimiser, timed in alternating rounds):
    eager, experts as F.grouped_mm   two 2D x 3D grouped_mm calls per MoE layer (offs from the
                                     expert counts), the per-expert biases added as gathered rows
    eager, experts as a loop         a loop of F.linear per expert (counts read to the host)
    eager, grouped_mm, fused AdamW   torch.optim.AdamW(fused=True) where the CPU supports it
    torch.compile                    the step function (grouped_mm experts) compiled, default mode
                                     (informative; its first call compiles, minutes on a small
                                     machine; a failure is reported, not fatal; --no-compile skips)
Before timing, every variant's loss on the batch is compared with groupgrad's from the dump (the
compiled one's from its first call); the script exits with status 1 if one differs by more than
--loss-tol (float32, summed in another order: they agree to ~1e-6).

Peak memory: the resident-set high-water mark during one step over the resident set before it
(Linux VmHWM, reset through /proc/self/clear_refs after malloc_trim), the "RSS MiB" column of
tools/bench; tracemalloc does not see tensor memory and getrusage's maxrss cannot be reset.
With --ours FILE (tools/bench --json output) each median is divided by groupgrad's train step
median from that file: a separate process and moment, weaker evidence than a side-by-side run.
"""

import argparse
import copy
import json
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_pytorch import rss_peak_of  # the same measure as tools/bench_pytorch.py


# ---- the dump tools/bench --train-dump writes ---------------------------------------------------
ST_DTYPES = {"F32": torch.float32, "F64": torch.float64, "BF16": torch.bfloat16,
             "F16": torch.float16, "I8": torch.int8, "I32": torch.int32, "I64": torch.int64}


def read_safetensors(path):
    """name -> tensor. The `safetensors` package where installed, else a reader of the format:
    8-byte little-endian header length, JSON header, raw little-endian data."""
    try:
        from safetensors.torch import load_file
        return load_file(path), "safetensors package"
    except ImportError:
        pass
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("{}: too short for a safetensors file".format(path))
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError("{}: header length {} exceeds the file".format(path, n))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = ST_DTYPES[info["dtype"]]
        shape = info["shape"]
        if not 0 <= begin <= end <= len(data):
            raise ValueError("{}: tensor {} lies outside the data".format(path, name))
        if begin == end:
            out[name] = torch.empty(shape, dtype=dtype)
        else:
            out[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype).reshape(shape)
    return out, "own reader (json + torch.frombuffer)"


def load_dump(directory):
    with open(os.path.join(directory, "train.json")) as f:
        meta = json.load(f)
    params, reader = read_safetensors(os.path.join(directory, meta["params_file"]))
    batch, _ = read_safetensors(os.path.join(directory, meta["batch_file"]))
    return meta, params, batch, reader


# ---- the model --------------------------------------------------------------------------------
class StackedLinear(nn.Module):
    """The experts' weights stacked: weight [experts, out, in] (nn.Linear's layout per expert)."""

    def __init__(self, experts, d_in, d_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, d_out, d_in))
        self.bias = nn.Parameter(torch.empty(experts, d_out))


class MoE(nn.Module):
    def __init__(self, embed, hidden, experts, top_k, grouped):
        super().__init__()
        self.top_k, self.experts, self.grouped = top_k, experts, grouped
        self.router = nn.Linear(embed, experts, bias=False)
        self.up = StackedLinear(experts, embed, hidden)
        self.down = StackedLinear(experts, hidden, embed)

    def forward(self, x):
        """x [*, embed] -> (output [*, embed], load-balancing loss)."""
        E, k, NE = x.shape[-1], self.top_k, self.experts
        x2 = x.reshape(-1, E)
        T = x2.shape[0]
        probs = torch.softmax(self.router(x2), -1)
        top_p, top_e = probs.topk(k, -1)
        gates = top_p / top_p.sum(-1, keepdim=True)
        expert = top_e.reshape(-1)
        expert_sorted, order = torch.sort(expert, stable=True)  # by expert, token order within
        counts = F.one_hot(expert, NE).sum(0)  # a fixed shape (bincount's is data-dependent)
        token = order // k
        dispatched = x2.index_select(0, token)
        if self.grouped:
            offs = counts.cumsum(0).to(torch.int32)
            h = F.gelu(F.grouped_mm(dispatched, self.up.weight.transpose(-2, -1), offs=offs)
                       + self.up.bias.index_select(0, expert_sorted))
            y = (F.grouped_mm(h, self.down.weight.transpose(-2, -1), offs=offs)
                 + self.down.bias.index_select(0, expert_sorted))
        else:
            ys, start = [], 0
            for e, c in enumerate(counts.tolist()):
                if c == 0:
                    continue
                h = F.gelu(F.linear(dispatched[start:start + c], self.up.weight[e],
                                    self.up.bias[e]))
                ys.append(F.linear(h, self.down.weight[e], self.down.bias[e]))
                start += c
            y = torch.cat(ys)
        # out[t] = sum over t's slots of gate * y[slot]: one index_add over the sorted slots.
        weighted = y * gates.reshape(-1).index_select(0, order).unsqueeze(-1)
        out = torch.zeros_like(x2).index_add(0, token, weighted)
        fraction = counts.to(x.dtype) / float(T * k)
        aux = (fraction * probs.mean(0)).sum() * NE
        return out.reshape(x.shape), aux


class Block(nn.Module):
    def __init__(self, s, grouped):
        super().__init__()
        self.ln1 = nn.LayerNorm(s["embed"])
        self.attn = nn.MultiheadAttention(s["embed"], s["heads"], batch_first=True)
        self.ln2 = nn.LayerNorm(s["embed"])
        self.moe = MoE(s["embed"], s["hidden"], s["experts"], s["top_k"], grouped)

    def forward(self, x, causal):
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, attn_mask=causal, need_weights=False, is_causal=True)
        y = x + a
        m, aux = self.moe(self.ln2(y))
        return y + m, aux


class CharTransformer(nn.Module):
    def __init__(self, s, grouped):
        super().__init__()
        self.tok_emb = nn.Embedding(s["vocab"], s["embed"])
        self.pos_emb = nn.Embedding(s["seq_len"], s["embed"])
        self.blocks = nn.ModuleList(Block(s, grouped) for _ in range(s["layers"]))
        self.ln_f = nn.LayerNorm(s["embed"])
        self.head = nn.Linear(s["embed"], s["vocab"])

    def forward(self, tokens):
        T = tokens.shape[1]
        x = self.tok_emb(tokens) + self.pos_emb(torch.arange(T))
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)  # True = masked out
        aux = None
        for b in self.blocks:
            x, a = b(x, causal)
            aux = a if aux is None else aux + a
        return self.head(self.ln_f(x)), aux


def copy_parameters(model, params):
    """groupgrad's names; a stacked expert parameter "p" gathers groupgrad's "p.0", "p.1", ...
    Every parameter on both sides is used exactly once, shapes checked."""
    used = set()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in params:
                src = params[name]
                used.add(name)
            else:
                parts = []
                while "{}.{}".format(name, len(parts)) in params:
                    used.add("{}.{}".format(name, len(parts)))
                    parts.append(params["{}.{}".format(name, len(parts))])
                if not parts:
                    raise ValueError("the dump has no parameter for PyTorch's " + name)
                src = torch.stack(parts)
            if tuple(src.shape) != tuple(p.shape):
                raise ValueError("parameter {}: {} in PyTorch, {} in the dump".format(
                    name, tuple(p.shape), tuple(src.shape)))
            p.copy_(src)
    unused = set(params) - used
    if unused:
        raise ValueError("dump parameters with no PyTorch counterpart: " +
                         ", ".join(sorted(unused)))


class Trainer:
    def __init__(self, s, params, batch, grouped, fused=False):
        self.s = s
        self.model = CharTransformer(s, grouped)
        copy_parameters(self.model, params)
        self.params = list(self.model.parameters())
        extra = dict(fused=True) if fused else {}
        self.opt = torch.optim.AdamW(self.params, lr=s["lr"], betas=tuple(s["betas"]),
                                     weight_decay=s["weight_decay"], **extra)
        self.input, self.target = batch["input"].clone(), batch["target"].clone()

    def loss(self):
        logits, aux = self.model(self.input)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.target.reshape(-1),
                             ignore_index=self.s["ignore_index"])
        return ce + aux * (self.s["aux_coef"] / self.s["layers"])

    def step(self):
        """One training step; returns the loss before it (detached)."""
        loss = self.loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.s["clip"])
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()

    def initial_loss(self):
        with torch.no_grad():
            return float(self.loss())


# ---- timing and memory (as tools/bench_pytorch.py) -----------------------------------------------
def elapsed_ms(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) * 1e3


def time_interleaved(fns, warmup, reps):
    """Medians of one call per fn: `warmup` calls each, then `reps` rounds running every fn once
    in turn (a training step lasts milliseconds: one call a sample)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    samples = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            samples[i].append(elapsed_ms(fn, 1))
    out = []
    for s in samples:
        q = sorted(s)
        out.append(dict(median_ms=statistics.median(s), min_ms=q[0],
                        p25_ms=q[int(0.25 * (len(q) - 1))], p75_ms=q[int(0.75 * (len(q) - 1))],
                        samples=len(s)))
    return out


def compiled_graphs():
    """How many graphs dynamo compiled (graph breaks split a function into several)."""
    try:
        from torch._dynamo.utils import counters
        return counters["stats"]["unique_graphs"]
    except (ImportError, KeyError, AttributeError):
        return "?"


def mib(b):
    return "-" if b is None or b < 0 else "{:.1f}".format(b / 1048576.0)


def first_line(e):
    text = str(e).strip()
    return "{}: {}".format(type(e).__name__, text.splitlines()[0] if text else "")


# ---- main -------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", help="the directory tools/bench --train-dump wrote (default: "
                        "the one named in --ours' JSON)")
    parser.add_argument("--ours", help="tools/bench --json output: adds the ratio to groupgrad's "
                        "train step median from that (separate) run")
    parser.add_argument("--reps", type=int, default=30, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per variant")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch.set_num_threads (default: all cores)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--loss-tol", type=float, default=2e-5,
                        help="largest |PyTorch's initial loss - groupgrad's| accepted (default "
                        "2e-5, about 5e-6 relative: float32 sums in another order differ by "
                        "~1e-6 here)")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args()
    if args.reps < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--reps and --threads must be >= 1, --warmup >= 0")

    ours = None
    if args.ours:
        with open(args.ours) as f:
            gg = json.load(f)
        for r in gg["rows"]:
            if r["workload"].startswith("train step") and r["variant"] == "groupgrad":
                ours = r
        if ours is None:
            sys.exit("error: {} has no groupgrad train step row (run tools/bench -w train)".format(
                args.ours))
        if args.dump is None:
            args.dump = gg["about"].get("train dump")
    if args.dump is None:
        parser.error("--dump DIR is needed (or --ours with a tools/bench run that had "
                     "--train-dump)")

    torch.set_num_threads(args.threads)
    meta, params, batch, reader = load_dump(args.dump)
    s = meta["settings"]
    gg_loss = meta["initial_loss"]
    about = {
        "torch": torch.__version__,
        "threads": "{} (OMP_WAIT_POLICY={})".format(torch.get_num_threads(),
                                                   os.environ.get("OMP_WAIT_POLICY", "unset")),
        "load before": "{:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()),
        "timing": "median of {} steps per variant after {} warm-up steps, variants "
                  "alternating".format(args.reps, args.warmup),
        "backends": "MKL {}, oneDNN {}".format(torch.backends.mkl.is_available(),
                                               torch.backends.mkldnn.is_available()),
        "dump": "{} (safetensors read by the {})".format(os.path.abspath(args.dump), reader),
        "model": "embed {}, {} heads, {} layers, {} experts top-{} hidden {}, vocab {}; batch "
                 "{}x{}".format(s["embed"], s["heads"], s["layers"], s["experts"], s["top_k"],
                                s["hidden"], s["vocab"], s["batch"], s["width"]),
    }

    variants = [("eager, experts as F.grouped_mm", dict(grouped=True)),
                ("eager, experts as a loop of F.linear", dict(grouped=False)),
                ("eager, grouped_mm, AdamW(fused=True)", dict(grouped=True, fused=True))]
    rows, runnable = [], []
    for name, opts in variants:
        try:
            t = Trainer(s, params, batch, **opts)
            loss = t.initial_loss()
        except (RuntimeError, NotImplementedError, ValueError, TypeError) as e:
            rows.append(dict(variant=name, unsupported=first_line(e)))
            continue
        ok = abs(loss - gg_loss) <= args.loss_tol
        rows.append(dict(variant=name, initial_loss=loss, loss_diff=loss - gg_loss, loss_ok=ok))
        runnable.append((rows[-1], t.step))
    if not args.no_compile:
        name = "torch.compile of the step (grouped_mm)"
        try:
            t = Trainer(s, params, batch, grouped=True)
            compiled = torch.compile(t.step)
            start = time.perf_counter()
            loss = float(compiled())  # compiles; the compiled forward's loss before the step
            compile_s = time.perf_counter() - start
            rows.append(dict(variant=name, initial_loss=loss, loss_diff=loss - gg_loss,
                             loss_ok=abs(loss - gg_loss) <= args.loss_tol,
                             compile_s=compile_s, graphs=compiled_graphs()))
            runnable.append((rows[-1], compiled))
        except Exception as e:  # noqa: BLE001 -- any compile failure is a result to report
            rows.append(dict(variant=name, unsupported="torch.compile failed: " + first_line(e)))

    timings = time_interleaved([fn for _, fn in runnable], args.warmup, args.reps)
    for (row, fn), t in zip(runnable, timings):
        row.update(t)
        row["rss_peak_bytes"] = rss_peak_of(fn)
        if ours:
            row["time_over_groupgrad"] = row["median_ms"] / ours["median_ms"]
    about["load after"] = "{:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg())

    for k, v in about.items():
        print("{:<18} {}".format(k + ":", v))
    print("\ninitial loss on the batch: groupgrad {:.6f} (from the dump)".format(gg_loss))
    for r in rows:
        if "initial_loss" in r:
            print("  {:<40} {:.6f}  diff {:+.2e}  {}".format(
                r["variant"], r["initial_loss"], r["loss_diff"],
                "agrees (tolerance {:g})".format(args.loss_tol) if r["loss_ok"]
                else "DIFFERS (tolerance {:g})".format(args.loss_tol)))
    workload = "train step (batch {}x{})".format(s["batch"], s["width"])
    print("\n{:<26} {:<40} {:>10} {:>10} {:>9}".format("workload", "variant", "median ms",
                                                       "peer/gg" if ours else "", "RSS MiB"))
    if ours:
        print("{:<26} {:<40} {:>10.3f} {:>10} {:>9}".format(
            workload, "groupgrad (from {})".format(os.path.basename(args.ours)),
            ours["median_ms"], "-", mib(ours.get("rss_peak_bytes"))))
    for r in rows:
        if "median_ms" not in r:
            print("{:<26} {:<40} {}".format(workload, r["variant"],
                                            r.get("unsupported", "not timed")))
            continue
        ratio = "{:.2f}x".format(r["time_over_groupgrad"]) if "time_over_groupgrad" in r else ""
        print("{:<26} {:<40} {:>10.3f} {:>10} {:>9}".format(
            workload, r["variant"], r["median_ms"], ratio, mib(r["rss_peak_bytes"])))
    for r in rows:
        if "compile_s" in r:
            print("\n{}: first call (compilation) took {:.1f} s; {} graphs compiled".format(
                r["variant"], r["compile_s"], r["graphs"]))
    print("\nRSS MiB: the resident-set high-water mark during one step over the resident set "
          "before it (tools/bench's RSS MiB).")
    if ours:
        print("peer/gg: median step time over groupgrad's from {} (a separate run; above 1: "
              "groupgrad is faster). groupgrad's tensor peak in that run: {} MiB.".format(
                  args.ours, mib(ours.get("alloc_peak_bytes"))))
    load = os.getloadavg()[0]
    if args.threads > 1 and load >= (os.cpu_count() or 1):
        print("note: the machine was loaded (load {:.1f} on {} hardware threads): a descheduled "
              "OpenMP thread stalls every parallel region of a step, so multi-threaded times "
              "swing widely; compare with --threads 1".format(load, os.cpu_count()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(about=about, workload=workload, groupgrad_initial_loss=gg_loss,
                           groupgrad=ours, rows=rows), f, indent=2)
        print("wrote " + args.json)
    bad = [r["variant"] for r in rows if not r.get("loss_ok", True)]
    if bad:
        print("error: initial loss differs from groupgrad's by more than {:g}: {}".format(
            args.loss_tol, ", ".join(bad)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
