#!/usr/bin/env python3
"""Runs groupgrad's benchmark and its PyTorch peers back to back for several rounds and prints the
medians across rounds as the README's Performance table (Markdown).

One round = tools/bench (every workload asked for, JSON), then tools/bench_pytorch.py on the same
kernel workloads, then tools/train_pytorch.py on the train step's dump (eager variants; add
--compile for torch.compile in the last round). Separate processes at separate moments: a median
over rounds is steadier than one run, and each ratio divides medians of the same round set.

    python3 tools/bench_rounds.py --out rounds/native                  # 3 rounds, all cores
    python3 tools/bench_rounds.py --out rounds/avx2 --max-isa AVX2     # as an AVX2 CPU
    python3 tools/bench_rounds.py --out rounds/native --summary-only   # the table again

--max-isa caps both sides: tools/bench's own flag (oneDNN), and for PyTorch ONEDNN_MAX_CPU_ISA
(its oneDNN), MKL_ENABLE_INSTRUCTIONS (MKL) and ATEN_CPU_CAPABILITY (its vectorised kernels).
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_WORKLOADS = ("moe", "heads", "tiny", "mixed")
FORMS = {"moe": "2D x 3D, offs", "heads": "list", "tiny": "list", "mixed": "list, bias"}
ISA_FOR_PYTORCH = {  # --max-isa -> (MKL_ENABLE_INSTRUCTIONS, ATEN_CPU_CAPABILITY)
    "SSE41": ("SSE4_2", "default"), "AVX": ("AVX", "default"), "AVX2": ("AVX2", "avx2"),
    "AVX2_VNNI": ("AVX2", "avx2"), "AVX512_CORE": ("AVX512", "avx512"),
    "AVX512_CORE_VNNI": ("AVX512", "avx512"), "AVX512_CORE_BF16": ("AVX512", "avx512"),
}


def run(cmd, env=None):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, env=env)


def run_rounds(args):
    os.makedirs(args.out, exist_ok=True)
    workloads = args.workload or list(KERNEL_WORKLOADS) + ["train", "autograd"]
    kernel = [w for w in workloads if w in KERNEL_WORKLOADS]
    env = dict(os.environ)
    if args.max_isa:
        mkl, aten = ISA_FOR_PYTORCH.get(args.max_isa, (None, None))
        env["ONEDNN_MAX_CPU_ISA"] = args.max_isa
        if mkl:
            env["MKL_ENABLE_INSTRUCTIONS"] = mkl
            env["ATEN_CPU_CAPABILITY"] = aten
    common = ["--reps", str(args.reps), "--threads", str(args.threads)]
    for r in range(1, args.rounds + 1):
        gg_json = os.path.join(args.out, "gg_r{}.json".format(r))
        cmd = [args.bench, "--json", gg_json] + common
        for w in workloads:
            cmd += ["-w", w]
        if args.max_isa:
            cmd += ["--max-isa", args.max_isa]
        dump = os.path.join(args.out, "dump")
        if "train" in workloads:
            cmd += ["--train-dump", dump]
        run(cmd)
        if kernel:
            cmd = [sys.executable, os.path.join(HERE, "bench_pytorch.py"), "--ours", gg_json,
                   "--json", os.path.join(args.out, "pt_r{}.json".format(r))] + common
            if args.max_isa and not args.max_isa.startswith("AVX512"):
                cmd += ["--bf16-reps", "3"]  # PyTorch's bf16 is a scalar loop there
            for w in kernel:
                cmd += ["-w", w]
            run(cmd, env)
        if "train" in workloads:
            cmd = [sys.executable, os.path.join(HERE, "train_pytorch.py"), "--ours", gg_json,
                   "--json", os.path.join(args.out, "tp_r{}.json".format(r))] + common
            if not (args.compile and r == args.rounds):
                cmd.append("--no-compile")
            run(cmd, env)


def medians(files, key=lambda r: (r["workload"], r["variant"])):
    """{(workload, variant): median over the files of each row's median_ms}, and the rows."""
    times, rows = {}, {}
    for path in files:
        with open(path) as f:
            data = json.load(f)
        for row in data["rows"]:
            if "median_ms" not in row:
                continue
            if "workload" not in row:
                row = dict(row, workload=data.get("workload", "train step"))
            times.setdefault(key(row), []).append(row["median_ms"])
            rows[key(row)] = row
    return {k: statistics.median(v) for k, v in times.items()}, rows


def fmt_ms(ms):
    return "{:.3f} ms".format(ms) if ms < 1 else "{:.1f} ms".format(ms)


def summarize(args):
    gg_files = sorted(glob.glob(os.path.join(args.out, "gg_r*.json")))
    if not gg_files:
        sys.exit("error: no gg_r*.json in {} (run the rounds first)".format(args.out))
    gg, gg_rows = medians(gg_files)
    pt, _ = medians(sorted(glob.glob(os.path.join(args.out, "pt_r*.json"))))
    tp, tp_rows = medians(sorted(glob.glob(os.path.join(args.out, "tp_r*.json"))),
                          key=lambda r: r["variant"])
    with open(gg_files[-1]) as f:
        about = json.load(f)["about"]
    print("{} rounds; {}; oneDNN ISA {}; threads {}; load before the last round {}.\n".format(
        len(gg_files), about.get("machine"), about.get("oneDNN ISA"), about.get("threads"),
        about.get("load before")))
    print("| workload | groupgrad | median | us/group | dense oneDNN GEMM / ours | "
          "PyTorch 2.x best variant | PyTorch / ours | F.grouped_mm / ours |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    workloads = []
    for (w, _v) in gg:
        if w not in workloads:
            workloads.append(w)
    for w in workloads:
        # PyTorch's ways of computing the workload (its dense mm of the same FLOPs is a
        # yardstick, like ours, not one of them).
        peers = {v: t for (pw, v), t in pt.items() if pw == w and not v.startswith("dense")}
        best = min(peers.items(), key=lambda kv: kv[1]) if peers else None
        grouped = next((t for v, t in peers.items() if v.startswith("F.grouped_mm")), None)
        dense = next((t for (dw, v), t in gg.items() if dw == w and v.startswith("dense")), None)
        for form in ("groupgrad", "groupgrad, 3D x 3D"):
            if (w, form) not in gg:
                continue
            ours = gg[(w, form)]
            row = gg_rows[(w, form)]
            if w.startswith("autograd"):
                print("| {} | {} | {} | {:.2f} us/op | - | - | - | - |".format(
                    w, form, fmt_ms(ours), ours * 1e3 / max(row.get("groups") or 64, 1)))
                continue
            if w.startswith("train"):
                eager = {v: t for v, t in tp.items() if v.startswith("eager")}
                tbest = min(eager.items(), key=lambda kv: kv[1]) if eager else None
                print("| {} | {} | {} | - | - | {} | {} | - |".format(
                    w, form, fmt_ms(ours),
                    "{} {}".format(tbest[0], fmt_ms(tbest[1])) if tbest else "-",
                    "{:.2f}x".format(tbest[1] / ours) if tbest else "-"))
                for v, t in tp.items():
                    if not v.startswith("eager"):
                        print("| {} | (PyTorch: {}) | {} | - | - | - | {:.2f}x | - |".format(
                            w, v, fmt_ms(t), t / ours))
                mem = tp_rows.get(tbest[0], {}).get("rss_peak_bytes") if tbest else None
                print("| {} memory | tensor peak {:.1f} MiB, RSS +{:.1f} MiB | - | - | - | "
                      "RSS +{} | - | - |".format(
                          w, (row.get("alloc_peak_bytes") or 0) / 1048576.0,
                          (row.get("rss_peak_bytes") or 0) / 1048576.0,
                          "{:.1f} MiB".format(mem / 1048576.0) if mem is not None else "-"))
                continue
            print("| {} | {} | {} | {:.2f} | {} | {} | {} | {} |".format(
                w, "3D x 3D" if form != "groupgrad" else FORMS.get(w.split()[0], form),
                fmt_ms(ours), ours * 1e3 / row["groups"],
                "{:.2f}x".format(dense / ours) if dense and form == "groupgrad" else "-",
                "{} {}".format(best[0], fmt_ms(best[1])) if best else "-",
                "{:.2f}x".format(best[1] / ours) if best else "-",
                "{:.2f}x".format(grouped / ours) if grouped else "-"))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for the rounds' JSON files")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-w", "--workload", action="append",
                        choices=list(KERNEL_WORKLOADS) + ["train", "autograd"],
                        help="workloads (default: all but dp); repeat for several")
    parser.add_argument("--reps", type=int, default=30, help="timed samples per variant")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--max-isa", help="run both sides as a CPU with at most this ISA "
                        "(tools/bench's --max-isa values)")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile of the train step in the last round")
    parser.add_argument("--bench", default=os.path.join(HERE, "..", "build", "tools", "bench"),
                        help="the tools/bench binary (default: build/tools/bench)")
    parser.add_argument("--summary-only", action="store_true",
                        help="only print the table from the JSON files already in --out")
    args = parser.parse_args()
    if args.rounds < 1 or args.reps < 1 or args.threads < 1:
        parser.error("--rounds, --reps and --threads must be >= 1")
    if not args.summary_only:
        run_rounds(args)
    summarize(args)


if __name__ == "__main__":
    main()
