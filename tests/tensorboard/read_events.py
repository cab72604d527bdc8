#!/usr/bin/env python3
"""Reads the event files tests/tensorboard/write_events.cpp wrote, with TensorBoard's own reader
(EventAccumulator), and checks every tag, step and value exactly; then truncates the event file
inside its last record (as a killed run leaves it) and checks that the records before it still read.

    read_events.py DIR
"""
import glob
import os
import shutil
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator as ea

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def load(path):
    acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0,
                                                   ea.TENSORS: 0})
    acc.Reload()
    return acc


def f32(x):
    return float(np.float32(x))


def expect_histogram(values):
    """PyTorch's add_histogram of values (default buckets), recomputed with numpy."""
    v, buckets = 1e-12, []
    while v < 1e20:
        buckets.append(v)
        v *= 1.1
    edges = [-b for b in reversed(buckets)] + [0] + buckets
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    counts, limits = np.histogram(values, bins=edges)
    nonzero = np.nonzero(counts)[0]
    first, last = int(nonzero[0]), int(nonzero[-1])
    kept = list(counts[first - 1:last + 1]) if first > 0 else [0] + list(counts[:last + 1])
    return dict(min=values.min(), max=values.max(), num=len(values), sum=values.sum(),
                sum_squares=values.dot(values), bucket_limit=list(limits[first:last + 2]),
                bucket=[float(c) for c in kept])


def check_main(acc, with_last):
    tags = acc.Tags()
    expected_scalars = {"train/loss", "lr"} | ({"last"} if with_last else set())
    check(set(tags["scalars"]) == expected_scalars, f"scalar tags {tags['scalars']}")
    loss = acc.Scalars("train/loss")
    check([e.step for e in loss] == list(range(20)), "train/loss steps")
    check([e.value for e in loss] == [f32(10.0 / (s + 1)) for s in range(20)], "train/loss values")
    lr = acc.Scalars("lr")
    check([e.step for e in lr] == [10 * s for s in range(20)], "lr steps")
    check([e.value for e in lr] == [f32(0.001 * s) for s in range(20)], "lr values")
    if with_last:
        last = acc.Scalars("last")
        check([(e.step, e.value) for e in last] == [(99, 42.0)], "last")

    check(set(tags["histograms"]) == {"weights", "counts"}, f"histogram tags {tags['histograms']}")
    weights = np.arange(-50, 50, dtype=np.float32) / np.float32(7.0)
    for tag, step, values in (("weights", 3, weights), ("counts", 4, np.arange(12))):
        events = acc.Histograms(tag)
        check(len(events) == 1 and events[0].step == step, f"{tag} step")
        h = events[0].histogram_value
        want = expect_histogram(values)
        for field in ("min", "max", "num"):
            check(getattr(h, field) == want[field], f"{tag} {field}: {getattr(h, field)} vs {want[field]}")
        for field in ("sum", "sum_squares"):
            check(abs(getattr(h, field) - want[field]) <= 1e-9 * max(1.0, abs(want[field])),
                  f"{tag} {field}: {getattr(h, field)} vs {want[field]}")
        check(list(h.bucket_limit) == want["bucket_limit"], f"{tag} bucket_limit")
        check(list(h.bucket) == want["bucket"], f"{tag} bucket: {list(h.bucket)} vs {want['bucket']}")

    check(tags["tensors"] == ["notes/text_summary"], f"tensor tags {tags['tensors']}")
    text = acc.Tensors("notes/text_summary")
    check(len(text) == 1 and text[0].step == 5, "text step")
    check(text[0].tensor_proto.string_val == ["groupgrad écrit du texte".encode()], "text value")
    meta = acc.SummaryMetadata("notes/text_summary")
    check(meta.plugin_data.plugin_name == "text", "text plugin name")


def main():
    root = sys.argv[1]
    files = glob.glob(os.path.join(root, "events.out.tfevents.*"))
    check(len(files) == 1, f"one event file in {root}: {files}")
    check_main(load(root), with_last=True)

    # add_scalars: a run per key, <main_tag>_<key>, holding main_tag.
    for key, values in (("train", [1.25, 0.75]), ("val", [2.5, 1.5])):
        acc = load(os.path.join(root, "loss_" + key))
        check(acc.Tags()["scalars"] == ["loss"], f"loss_{key} tags")
        check([(e.step, e.value) for e in acc.Scalars("loss")] == list(zip([7, 8], values)),
              f"loss_{key} values")

    # A killed run: the file ends inside its last record (in its payload, then in its header).
    data = open(files[0], "rb").read()
    starts, at = [], 0
    while at < len(data):
        starts.append(at)
        at += 16 + int.from_bytes(data[at:at + 8], "little")
    last = starts[-1]
    for keep in (last + 6, last + 14, len(data) - 2):  # in its length, its payload, its CRC
        damaged = os.path.join(root, f"truncated_{keep}")
        shutil.rmtree(damaged, ignore_errors=True)
        os.makedirs(damaged)
        with open(os.path.join(damaged, os.path.basename(files[0])), "wb") as out:
            out.write(data[:keep])
        check_main(load(damaged), with_last=False)

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
