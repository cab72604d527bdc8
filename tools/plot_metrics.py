#!/usr/bin/env python3
"""Draws examples/train_multihead's metrics.csv as a PNG: the training loss (each step, and its
running mean), the validation loss, and the bigram baseline the model must beat; below it, each
layer's share of token-slots per expert over the run (its running mean), one panel per layer.

    python3 tools/plot_metrics.py train_multihead_out/metrics.csv -o training.png

Needs matplotlib (Debian: apt-get install python3-matplotlib; or pip install matplotlib). A CSV
written before the bigram and load columns existed gets the loss panel only.
"""
import argparse
import csv
import re
import sys


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "step" not in rows[0] or "train_loss" not in rows[0]:
        sys.exit(f"{path}: not a train_multihead metrics.csv (no step/train_loss columns)")
    return rows


def column(rows, name):
    """(steps, values) of the rows where the column is present and not empty."""
    steps, values = [], []
    for r in rows:
        v = r.get(name)
        if v not in (None, ""):
            steps.append(int(r["step"]))
            values.append(float(v))
    return steps, values


def running_mean(values, window):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="metrics.csv of a train_multihead run")
    parser.add_argument("-o", "--output", default="training.png", help="PNG to write")
    parser.add_argument("--window", type=int, default=50,
                        help="steps in the running means (default 50)")
    parser.add_argument("--dpi", type=int, default=70, help="resolution (default 70)")
    args = parser.parse_args()
    if args.window < 1:
        sys.exit("--window must be 1 or more")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read(args.csv)
    loads = {}  # layer -> [(expert, column)]
    for name in rows[0]:
        m = re.fullmatch(r"load_l(\d+)_e(\d+)", name or "")
        if m:
            loads.setdefault(int(m.group(1)), []).append((int(m.group(2)), name))
    panels = 1 + len(loads)
    fig, axes = plt.subplots(panels, 1, figsize=(8, 3.2 + 2.0 * (panels - 1)), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2] + [1] * (panels - 1)})
    ax = axes[0][0]
    steps, train = column(rows, "train_loss")
    ax.plot(steps, train, color="tab:blue", alpha=0.25, linewidth=0.6, label="train (each step)")
    ax.plot(steps, running_mean(train, args.window), color="tab:blue", linewidth=1.5,
            label=f"train (mean of {args.window})")
    vsteps, val = column(rows, "val_loss")
    if val:
        ax.plot(vsteps, val, "o-", color="tab:orange", markersize=3, label="validation")
    bsteps, bigram = column(rows, "bigram_val_loss")
    if bigram:
        ax.axhline(bigram[-1], color="tab:red", linestyle="--", linewidth=1,
                   label=f"bigram baseline ({bigram[-1]:.3f})")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("train_multihead")
    low = min(val + [bigram[-1]] if bigram else val or train)
    ax.set_ylim(low - 0.3, max(running_mean(train, args.window)[: max(1, len(train) // 20)]) + 0.2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    for i, layer in enumerate(sorted(loads)):
        ax = axes[i + 1][0]
        for expert, name in sorted(loads[layer]):
            s, share = column(rows, name)
            ax.plot(s, [100 * v for v in running_mean(share, args.window)], linewidth=1,
                    label=f"expert {expert}")
        ax.axhline(100 / len(loads[layer]), color="gray", linestyle=":", linewidth=1)
        ax.set_ylabel(f"layer {layer} load %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=len(loads[layer]), loc="upper right")
    axes[-1][0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(args.output, dpi=args.dpi)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
