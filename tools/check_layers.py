#!/usr/bin/env python3
"""Checks that the library's layers include only downward (issue #14).

Layers, lowest first; a file may include files of its own layer and of lower ones only:

    core (0) < autograd (1) < ops (2) < nn (3) < distributed (4)

groupgrad.hpp (the umbrella header), gradcheck_cases.cpp (the library's gradcheck aggregator, the
one file that knows every family's cases) and anything else outside these folders (tests/,
tools/, examples/) sit above them all: no library file may include them. (distributed/, the
process group and DistributedDataParallel over MPI, sits above nn: issue #15.)

Inside ops the sub-layers are one-way too, lowest first:

    vocabulary (ops/op_kinds.*, ops/loss_reduction.hpp, ops/matmul_problem.*: the names the
                others share)
      < backends (ops/onednn/, ops/reference/: siblings, neither includes the other)
      < kernels (ops/kernels/)
      < the ops themselves (every other file directly in ops/)

A new vocabulary header must be added to VOCABULARY below.

Scanned: every #include "..." and #include <groupgrad/...> line of the C++ files under core/,
autograd/, ops/, nn/ and distributed/. A quoted include resolves as the compiler resolves it here: first
beside the including file, then from the source root; <groupgrad/x> is the source root's x; other
<...> includes are system headers and are not checked. A quoted include that resolves to no file
is an error.

Every violation is printed as file:line -> included file, and the exit status is 1 if there
is any (or an unresolved include), else 0. There is no list of tolerated exceptions: the last
upward include went in issue #14, and a new one is fixed by depending downward (declare low,
define high: docs/architecture.md), not by excusing it.

    python3 tools/check_layers.py [--root DIR]
"""

import argparse
import os
import re
import sys

LAYERS = {"core": 0, "autograd": 1, "ops": 2, "nn": 3, "distributed": 4}
ABOVE_NN = 5  # groupgrad.hpp, tests/, tools/, examples/: not for library files to include

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


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.dirname(here), help="the source root")
    args = parser.parse_args()

    violations, unresolved = scan(args.root)
    for source, number, target in violations:
        print(f"{source}:{number} -> {target}")
    for source, number, text in unresolved:
        print(f"{source}:{number}: error: #include \"{text}\" resolves to no file")
    print(f"{len(violations)} upward include(s), {len(unresolved)} unresolved")
    if violations:
        print("Upward includes: depend downward instead (see this script's docstring for the order "
              "and docs/architecture.md for how).")
    return 1 if violations or unresolved else 0


if __name__ == "__main__":
    sys.exit(main())
