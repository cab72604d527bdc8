#!/usr/bin/env python3
"""Writes the hand-made seeds of tests/fuzz/corpus/fuzz_safetensors (stdlib only; rerun to
regenerate). The grouped_mm and views corpora are libFuzzer-minimised (-merge=1) runs, not made
here. Seeds are small valid and near-valid safetensors files for fuzz_safetensors' module
(lin.weight [2, 3], lin.bias [2], norm.weight [2], norm.bias [2] as F32, steps [1] as I64)."""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_safetensors")
SIZES = {"F32": 4, "F64": 8, "BF16": 2, "F16": 2, "I8": 1, "I32": 4, "I64": 8}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, data bytes or None for zeros)."""
    header, blobs, offset = {}, [], 0
    for name, dtype, shape, data in tensors:
        n = SIZES[dtype]
        for s in shape:
            n *= s
        data = data if data is not None else bytes(n)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def floats(*v):
    return struct.pack(f"<{len(v)}f", *v)


MODULE = [
    ("lin.weight", "F32", [2, 3], floats(1, 2, 3, 4, 5, 6)),
    ("lin.bias", "F32", [2], floats(0.5, -0.5)),
    ("norm.weight", "F32", [2], floats(1, 1)),
    ("norm.bias", "F32", [2], floats(0, 0)),
    ("steps", "I64", [1], struct.pack("<q", 7)),
]

SEEDS = {
    "module": safetensors(MODULE),
    "module_metadata": safetensors(MODULE, {"format": "pt", "step": "12"}),
    "module_f64": safetensors([(n, "F64" if d == "F32" else d, s, None) for n, d, s, _ in MODULE]),
    "module_bf16": safetensors([(n, "BF16" if d == "F32" else d, s, None) for n, d, s, _ in MODULE]),
    "every_dtype": safetensors([(f"t.{d}", d, [2, 1], None) for d in SIZES]),
    "empty_header": safetensors([]),
    "scalar_and_empty": safetensors([("s", "F32", [], floats(3)), ("e", "I8", [0, 4], b"")]),
    "unpadded": safetensors(MODULE[:2], pad=False),
    "truncated": safetensors(MODULE)[:-9],
}


def raw(header_text, data=b""):
    """A file with this exact header text (which need not be valid JSON) and data."""
    text = header_text.encode() if isinstance(header_text, str) else header_text
    return struct.pack("<Q", len(text)) + text + data


def nest(open_, inner, close, depth):
    return open_ * depth + inner + close * depth


# Headers nesting past the reader's limit (8 levels; a recursive dump() of 100,000 levels once
# overflowed the stack), names and values too long to quote whole, and strings that are not
# UTF-8 (JSON refuses them; the writer must never produce them).
ENTRY = '"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
SEEDS.update({
    "deep_shape_9": raw('{"t":{"dtype":"F32","shape":' + nest("[", "2", "]", 7) +
                        ',"data_offsets":[0,8]}}', bytes(8)),
    "deep_shape_20000": raw('{"t":{"dtype":"F32","shape":' + nest("[", "", "]", 20000) +
                            ',"data_offsets":[0,0]}}'),
    "deep_dtype_5000": raw('{"t":{"dtype":' + nest("[", '"F32"', "]", 5000) +
                           ',"shape":[2],"data_offsets":[0,8]}}', bytes(8)),
    "deep_offsets_5000": raw('{"t":{"dtype":"F32","shape":[2],"data_offsets":' +
                             nest("[", "0", "]", 5000) + "}}", bytes(8)),
    "deep_metadata_5000": raw('{"__metadata__":{"k":' + nest('{"a":', '"v"', "}", 5000) + "}," +
                              ENTRY + "}", bytes(8)),
    "long_name": raw('{"' + "n" * 4000 + '":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}',
                     bytes(8)),
    "long_dtype": raw('{"t":{"dtype":"' + "F" * 4000 + '","shape":[2],"data_offsets":[0,8]}}',
                      bytes(8)),
    "non_utf8_name": raw(b'{"caf\xe9":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
                         bytes(8)),
    "non_utf8_metadata": raw(b'{"__metadata__":{"file":"caf\xe9.txt"},' + ENTRY.encode() + b"}",
                             bytes(8)),
})

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(SEEDS)} seeds to {OUT}")
