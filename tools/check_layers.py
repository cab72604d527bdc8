#!/usr/bin/env python3
"""Checks that the library's layers include only downward (issue #14).

Layers, lowest first; a file may include files of its own layer and of lower ones only:

    core (0) < autograd (1) < ops (2) < nn (3)

groupgrad.hpp (the umbrella header), gradcheck_cases.cpp (the library's gradcheck aggregator, the
one file that knows every family's cases) and anything else outside these four folders (tests/,
tools/, examples/) sit above nn: no library file may include them.

Inside ops the sub-layers are one-way too, lowest first:

    vocabulary (ops/op_kinds.*, ops/loss_reduction.hpp, ops/matmul_problem.*: the names the
                others share)
      < backends (ops/onednn/, ops/reference/: siblings, neither includes the other)
      < kernels (ops/kernels/)
      < the ops themselves (every other file directly in ops/)

A new vocabulary header must be added to VOCABULARY below.

Scanned: every #include "..." and #include <groupgrad/...> line of the C++ files under core/,
autograd/, ops/ and nn/. A quoted include resolves as the compiler resolves it here: first
beside the including file, then from the source root; <groupgrad/x> is the source root's x; other
<...> includes are system headers and are not checked. A quoted include that resolves to no file
is an error.

Every violation is printed as file:line -> included file. Known violations are listed, one
"file -> included file" per line, in the baseline (tools/check_layers_baseline.txt; # starts a
comment). The exit status is 1 if a violation is not in the baseline, or if a baseline entry no
longer occurs (delete it: the baseline only shrinks), else 0.

    python3 tools/check_layers.py [--root DIR] [--baseline FILE]
"""

import argparse
import os
import re
import sys

LAYERS = {"core": 0, "autograd": 1, "ops": 2, "nn": 3}
ABOVE_NN = 4  # groupgrad.hpp, tests/, tools/, examples/: not for library files to include

VOCABULARY = {"ops/op_kinds.hpp", "ops/op_kinds.cpp", "ops/loss_reduction.hpp",
              "ops/matmul_problem.hpp", "ops/matmul_problem.cpp"}
OPS_SUBLAYERS = {"vocabulary": 0, "onednn": 1, "reference": 1, "kernels": 2, "ops": 3}

SOURCES = (".hpp", ".cpp", ".h", ".hh", ".hxx", ".inl", ".ipp", ".cc", ".cxx", ".c")
INCLUDE = re.compile(r'^\s*#\s*include\s*(?:"([^"]+)"|<(groupgrad/[^>]+)>)')


def layer_of(path):
    """(layer, ops sub-layer name or None) of a path relative to the source root."""
    parts = path.split("/")
    if len(parts) < 2 or parts[0] not in LAYERS:
        return ABOVE_NN, None
    if parts[0] != "ops":
        return LAYERS[parts[0]], None
    if path in VOCABULARY:
        return LAYERS["ops"], "vocabulary"
    if len(parts) > 2 and parts[1] in OPS_SUBLAYERS:
        return LAYERS["ops"], parts[1]
    return LAYERS["ops"], "ops"


def upward(source, target):
    """Whether `source` including `target` (both relative to the root) goes against the order."""
    (layer, sub), (target_layer, target_sub) = layer_of(source), layer_of(target)
    if target_layer != layer:
        return target_layer > layer
    if sub is None or sub == target_sub:
        return False
    # Different ops sub-layers: strictly downward only (onednn and reference share a rank).
    return OPS_SUBLAYERS[target_sub] >= OPS_SUBLAYERS[sub]


def resolve(root, source, quoted, angled):
    """The included file relative to root, or None when it resolves to no file."""
    candidates = []
    if quoted:
        candidates = [os.path.join(os.path.dirname(source), quoted), quoted]
    else:
        candidates = [angled[len("groupgrad/"):]]
    for candidate in candidates:
        rel = os.path.normpath(candidate).replace(os.sep, "/")
        if not rel.startswith("../") and os.path.isfile(os.path.join(root, rel)):
            return rel
    return None


def scan(root):
    """(violations as (file, line, target), unresolved as (file, line, text))."""
    violations, unresolved = [], []
    for top in LAYERS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.endswith(SOURCES):
                    continue
                source = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                with open(os.path.join(root, source), encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = resolve(root, source, m.group(1), m.group(2))
                        if target is None:
                            unresolved.append((source, number, m.group(1) or m.group(2)))
                        elif upward(source, target):
                            violations.append((source, number, target))
    return violations, unresolved


def read_baseline(path):
    entries = set()
    if not os.path.exists(path):
        return entries
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                source, arrow, target = line.partition(" -> ")
                if not arrow:
                    sys.exit(f"{path}: not 'file -> included file': {line}")
                entries.add((source.strip(), target.strip()))
    return entries


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.dirname(here), help="the source root")
    parser.add_argument("--baseline", default=os.path.join(here, "check_layers_baseline.txt"),
                        help="the known violations")
    args = parser.parse_args()

    violations, unresolved = scan(args.root)
    baseline = read_baseline(args.baseline)
    found = {(source, target) for source, _, target in violations}
    new = [v for v in violations if (v[0], v[2]) not in baseline]
    gone = sorted(baseline - found)

    for source, number, target in violations:
        known = " (baseline)" if (source, target) in baseline else ""
        print(f"{source}:{number} -> {target}{known}")
    for source, number, text in unresolved:
        print(f"{source}:{number}: error: #include \"{text}\" resolves to no file")
    for source, target in gone:
        print(f"{args.baseline}: {source} -> {target} no longer occurs: delete it from the baseline")
    print(f"{len(violations)} upward include(s), {len(new)} not in the baseline, "
          f"{len(gone)} stale baseline entr{'y' if len(gone) == 1 else 'ies'}")
    if new:
        print("New upward includes: depend downward instead (see this script's docstring for the "
              "order), do not add them to the baseline.")
    return 1 if new or gone or unresolved else 0


if __name__ == "__main__":
    sys.exit(main())
