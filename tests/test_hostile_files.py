"""Hostile files for ``shapecalc inspect``, generated family by family (over a thousand
files): safetensors headers with markup, escapes and surrogates in names, dotted names a
thousand deep, wrong dtypes, shapes and offsets, bracket bombs, truncations; torch.save
files with shared references, cycles, deep nesting and objects that would run code;
checkpoint folders with hostile indexes and configs; random bytes under every name.
Each is inspected as a table and as JSON: the answer is a clean listing (exit 0, or 1 for
a folder that disagrees with its config) or one line ``Error: ...`` (exit 2), printable,
in bounded time; the largest are measured for their peak memory in a fresh process."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import run

HOSTILE_CHARS = [
    "[bold]",
    "[/bold]",
    "[/]",
    "[link=http://x]",
    "\x1b[2J",
    "\x07",
    "\ud800",
    "\u202e",
    "\x00",
    "\n",
    "\t",
    "é",
    "😀",
    ".",
    "..",
    "{0..3}",
    "%s",
    "\\",
]


def header_file(path: Path, header: Any, data: bytes = b"", raw: bytes | None = None) -> Path:
    body = raw if raw is not None else json.dumps(header).encode("utf-8", "surrogatepass")
    path.write_bytes(struct.pack("<Q", len(body)) + body + data)
    return path


def entry(shape: list[int], begin: int = 0, dtype: str = "F32") -> dict[str, Any]:
    size = 4
    for d in shape:
        size *= d
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, begin + size]}


# -- the families: each yields files into a folder ---------------------------------------------
def names(folder: Path, rng: random.Random) -> Iterator[Path]:
    for i in range(150):
        name = "".join(
            rng.choice([*HOSTILE_CHARS, "a", "b", "w"]) for _ in range(rng.randint(1, 8))
        )
        yield header_file(folder / f"names{i}.safetensors", {name: entry([1])}, bytes(4))


def deep_names(folder: Path, rng: random.Random) -> Iterator[Path]:
    for i, depth in enumerate([1, 2, 10, 100, 500, 1000, 2000, 5000] * 10):
        name = ".".join(rng.choice(["a", "0", "[b]", ""]) for _ in range(depth))
        yield header_file(
            folder / f"deep{i}.safetensors", {name: entry([1]), "x": entry([1], 4)}, bytes(8)
        )


def bad_entries(folder: Path, rng: random.Random) -> Iterator[Path]:
    dtypes: list[Any] = [["F32"], {"a": 1}, 3, None, "F33", True, "", "f32", "F32 " * 1000]
    shapes: list[Any] = [
        [-1],
        [1.5],
        [True],
        ["2"],
        [[1]],
        [10**30],
        [10**1000],
        5,
        None,
        [2**63],
        list(range(1000)),
    ]
    offsets: list[Any] = [
        [0],
        [0, 1, 2],
        [4, 0],
        [-4, 0],
        ["0", "4"],
        [0, 10**40],
        None,
        [0, 10**1000],
        [0.0, 4.0],
        [True, 4],
    ]
    i = 0
    for field, values in (("dtype", dtypes), ("shape", shapes), ("data_offsets", offsets)):
        for value in values:
            for _ in range(3):
                item = entry([1])
                item[field] = value
                yield header_file(folder / f"entry{i}.safetensors", {"w": item}, bytes(4))
                i += 1
    for i in range(20):  # overlaps and gaps
        a, b = rng.randint(0, 8), rng.randint(0, 8)
        header = {
            "a": {"dtype": "U8", "shape": [4], "data_offsets": [a, a + 4]},
            "b": {"dtype": "U8", "shape": [4], "data_offsets": [b, b + 4]},
        }
        yield header_file(folder / f"span{i}.safetensors", header, bytes(rng.randint(0, 16)))


def structure(folder: Path, rng: random.Random) -> Iterator[Path]:
    raws = [
        b"[{},{}]",
        b'{"a":[{},{}]}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"{}",
        b"null",
        b"1",
        b'"x"',
        b"{" + b'"a":{},' * 2000 + b'"b":{}}',
        b"\xff\xfe{}",
        b'{"a": NaN}',
        b'{"__metadata__": [1]}',
        b'{"__metadata__": {"a": 1}}',
        b'{"a": {}}',
        b'{"a": {"dtype": "F32"}}',
        b'{"a":1,"a":2}',
        b"{" * 3 + b"}" * 3,
    ]
    for i, raw in enumerate(raws * 8):
        yield header_file(folder / f"structure{i}.safetensors", None, b"", raw)


def truncated(folder: Path, rng: random.Random) -> Iterator[Path]:
    good = json.dumps({"w": entry([4])}).encode()
    whole = struct.pack("<Q", len(good)) + good + bytes(16)
    for i in range(100):
        cut = rng.randint(0, len(whole))
        path = folder / f"cut{i}.safetensors"
        path.write_bytes(whole[:cut])
        yield path
    for i, length in enumerate([0, 2**63, 2**64 - 1, 100 * 1024 * 1024 + 1, len(good) + 1000]):
        path = folder / f"length{i}.safetensors"
        path.write_bytes(struct.pack("<Q", length) + good + bytes(16))
        yield path


def many(folder: Path, rng: random.Random) -> Iterator[Path]:
    for i in range(10):
        count = rng.randint(1000, 20000)
        header, offset = {}, 0
        for k in range(count):
            header[f"layer{k % 97}.block{k}.{rng.choice(['w', 'b', '[x]'])}"] = entry([1], offset)
            offset += 4
        yield header_file(folder / f"many{i}.safetensors", header, bytes(offset))


def random_bytes(folder: Path, rng: random.Random) -> Iterator[Path]:
    suffixes = [".safetensors", ".pt", ".pth", ".bin", "", ".json", ".keras", ".h5", ".txt"]
    starts = [b"", b"PK\x03\x04", b"\x80\x02", b"{", b"\x89HDF", b"GGUF", b"\x08\x00" * 4]
    for i in range(300):
        start = rng.choice(starts)
        path = folder / f"random{i}{rng.choice(suffixes)}"
        path.write_bytes(start + rng.randbytes(rng.randint(0, 300)))
        yield path


def torch_files(folder: Path, rng: random.Random) -> Iterator[Path]:
    torch = pytest.importorskip("torch")
    t = torch.zeros(2)
    for i in range(30):  # shared references: 2^depth paths to one tensor
        x: Any = [t]
        for _ in range(rng.randint(5, 40)):
            x = [x, x]
        path = folder / f"shared{i}.pt"
        torch.save({"x": x}, path)
        yield path
    for i in range(30):  # cycles
        c: Any = [] if i % 2 else {}
        if isinstance(c, list):
            c.append(c)
            c.append(torch.zeros(1))
        else:
            c["self"] = c
            c["t"] = torch.zeros(1)
        path = folder / f"cycle{i}.pt"
        torch.save({"c": c}, path)
        yield path
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)
    try:
        for i, depth in enumerate([10, 63, 64, 65, 100, 500, 1000, 2000] * 3):
            d: Any = torch.zeros(1)
            for _ in range(depth):
                d = [d]
            path = folder / f"nested{i}.pt"
            torch.save({"d": d}, path)
            yield path
    finally:
        sys.setrecursionlimit(limit)
    for i in range(30):  # keys with markup and escapes; values that are not tensors
        key = "".join(rng.choice([*HOSTILE_CHARS[:10], "k"]) for _ in range(4))
        value: Any = rng.choice([torch.zeros(1), 3, "text", None, [1, 2], {"a": torch.zeros(2)}])
        path = folder / f"keys{i}.pt"
        torch.save({key: value, "w": torch.zeros(1)}, path)
        yield path


def folders(folder: Path, rng: random.Random) -> Iterator[Path]:
    indexes: list[Any] = [
        {"weight_map": {"w": "../x.safetensors"}},
        {"weight_map": {"w": "/etc/passwd"}},
        {"weight_map": []},
        {"weight_map": {"w": 3}},
        [],
        "x",
        {"weight_map": {}},
        {"weight_map": {"w": "missing.safetensors"}},
        {"weight_map": {"v": "a.safetensors"}},
        {"weight_map": {"w": "a.safetensors", "[bold]": "a.safetensors"}},
    ]
    configs: list[Any] = [
        {"model_type": "llama"},
        {"model_type": ["llama"]},
        {"model_type": "xlnet"},
        {"model_type": "gpt2", "n_embd": "x"},
        [],
        {"model_type": "bert", "x" * 5000: 1},
        {"model_type": "gpt2", "vocab_size": 2**70},
        {"model_type": "qwen2_moe", "mlp_only_layers": [True, -1]},
        {"model_type": "qwen3_moe", "mlp_only_layers": "0,1", "decoder_sparse_step": 0},
        {"model_type": "qwen3_moe", "num_hidden_layers": 2**62, "mlp_only_layers": [2**61]},
        {"model_type": "qwen2_moe", "decoder_sparse_step": 2**40, "num_hidden_layers": 2**50},
        {"model_type": "qwen3_next", "layer_types": ["linear_attention"] * 3},
        {"model_type": "qwen3_next", "layer_types": [None, "x"], "full_attention_interval": 0},
        {"model_type": "qwen3_next", "num_hidden_layers": 2**62, "full_attention_interval": 2**40},
        {"model_type": "gemma3_text", "layer_types": ["sliding_attention", 7]},
        {"model_type": "gemma3_text", "sliding_window_pattern": 2**70, "sliding_window": -1},
        {"model_type": "gemma3", "text_config": "x", "vision_config": []},
        {"model_type": "gemma3", "text_config": {"model_type": "llama", "layer_types": {}}},
        {"model_type": "cohere2", "num_hidden_layers": 2**62, "sliding_window_pattern": 2**61},
        {"model_type": "cohere2", "layer_types": ["full_attention"] * 3},
        None,
    ]
    for i in range(100):
        here = folder / f"folder{i}"
        here.mkdir()
        header_file(here / "a.safetensors", {"w": entry([2])}, bytes(8))
        if rng.random() < 0.6:
            (here / "model.safetensors.index.json").write_text(json.dumps(rng.choice(indexes)))
        if rng.random() < 0.7:
            config = rng.choice(configs)
            (here / "config.json").write_text("{not json" if config is None else json.dumps(config))
        if rng.random() < 0.2:
            header_file(here / "b.safetensors", {"v": entry([1])}, bytes(4))
        yield here


#: a secret outside every folder the generators make: no answer may show it
SECRET = "hf_SECRETtokenNEVERshown"


def not_checkpoints(folder: Path, rng: random.Random) -> Iterator[Path]:
    """Files named as checkpoints that are none: text, nothing, another file's bytes."""
    texts = [b"", b"101\n", b"hello world", b"\x00" * 7, SECRET.encode(), b"{}", b"PK", b"\x80"]
    for i in range(60):
        suffix = rng.choice([".pt", ".pth", ".bin", ".safetensors", ".ckpt"])
        path = folder / f"text{i}{suffix}"
        path.write_bytes(rng.choice(texts) + bytes(rng.randint(0, 20)))
        yield path


def links(folder: Path, rng: random.Random) -> Iterator[Path]:
    """Folders whose config, index or shards are links to a file outside them (a token,
    the environment, /etc/passwd) or inside them (followed as usual)."""
    secret = folder / "token"
    secret.write_text(SECRET)
    outside = [str(secret), "/proc/self/environ", "/etc/passwd"]
    names = ["model.safetensors", "model.safetensors.index.json", "config.json", "a.safetensors"]
    for i in range(40):
        here = folder / f"linked{i}"
        here.mkdir()
        header_file(here / "real.safetensors", {"w": entry([2])}, bytes(8))
        name = rng.choice(names)
        if name == "a.safetensors":
            (here / "model.safetensors.index.json").write_text(
                json.dumps({"weight_map": {"w": "a.safetensors"}})
            )
        if name != "config.json" and rng.random() < 0.5:
            (here / "config.json").write_text(json.dumps({"model_type": "llama"}))
        target = rng.choice([*outside, "real.safetensors"])
        (here / name).symlink_to(target)
        yield here


def mxfp4(folder: Path, rng: random.Random) -> Iterator[Path]:
    """gpt-oss folders as the Hub lays them out (a quantization_config, the experts'
    MXFP4 blocks and scales in uint8), their configs and blocks damaged: hidden sizes no
    block divides, blocks of the wrong rank, dtype or size, scales missing, a million
    experts against a few tensors."""
    blocks = "model.layers.0.mlp.experts.gate_up_proj_blocks"
    scales = "model.layers.0.mlp.experts.gate_up_proj_scales"
    shapes: list[Any] = [[2, 64, 2, 16], [2, 64, 2], [2, 64, 2, 16, 1], [], [0, 64, 2, 16]]
    shapes += [[2, 64, 2, 10**12], [-2, 64, 2, 16], [2**40, 2**40, 2**40, 2**40]]
    for i in range(40):
        config = {
            "model_type": "gpt_oss",
            "vocab_size": 16,
            "hidden_size": rng.choice([32, 48, 64, 2**40]),
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": rng.choice([1, 2, 3]),
            "head_dim": rng.choice([4, 5, 8]),
            "intermediate_size": rng.choice([32, 40]),
            "num_local_experts": rng.choice([2, 1_600_000]),
            "num_experts_per_tok": rng.choice([1, 2, 4]),
            "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["x"]},
        }
        here = folder / f"mxfp4{i}"
        here.mkdir()
        (here / "config.json").write_text(json.dumps(config))
        tensors = {
            "model.embed_tokens.weight": ([16, 64], "BF16"),
            blocks: (rng.choice(shapes), rng.choice(["U8", "U8", "F32", "BF16", "I8"])),
        }
        if rng.random() < 0.5:
            tensors[scales] = ([2, 64, 2], "U8")
        header, offset = {}, 0
        for name, (shape, dtype) in tensors.items():
            size = {"U8": 1, "I8": 1, "BF16": 2, "F32": 4}[dtype]
            for d in shape:
                size *= max(d, 0)
            size = size if size < 2**20 else 4  # a size past the file: its offsets refused
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
            offset += size
        header_file(here / "model.safetensors", header, bytes(offset))
        yield here


def state_space(folder: Path, rng: random.Random) -> Iterator[Path]:
    """Mamba-2 and Falcon-H1 folders, their configs and mixer tensors damaged: heads that
    do not divide the width, groups that do not divide the heads, a state of 0, a
    mamba_d_head of text or of the wrong size, a chunk of null, a million layers; A_log,
    conv1d and in_proj of the wrong rank, size or dtype."""
    for i in range(40):
        falcon = rng.random() < 0.5
        hidden = rng.choice([8, 8, 8, 12, 2**40])
        if falcon:
            config: dict[str, Any] = {
                "model_type": "falcon_h1",
                "vocab_size": 16,
                "hidden_size": hidden,
                "num_hidden_layers": rng.choice([1, 1, 2, 1_000_000]),
                "num_attention_heads": rng.choice([2, 2, 3]),
                "intermediate_size": 8,
                "mamba_n_heads": rng.choice([4, 4, 4, 5, 0]),
                "mamba_d_ssm": rng.choice([8, 8, 8, 10, None, -8]),
                "mamba_d_head": rng.choice(["auto", "auto", 2, 3, "two", None]),
                "mamba_d_state": rng.choice([4, 4, 4, 0]),
                "mamba_n_groups": rng.choice([1, 2, 2, 3]),
                "mamba_chunk_size": rng.choice([4, 4, 4, None, 0]),
                "ssm_multipliers": rng.choice([[1.0] * 5, [1.0] * 5, "x"]),
            }
            prefix = "model.layers.0.mamba."
        else:
            config = {
                "model_type": "mamba2",
                "vocab_size": 16,
                "hidden_size": hidden,
                "num_hidden_layers": rng.choice([1, 2, 1_000_000]),
                "num_heads": rng.choice([4, 4, 4, 5, 0, None]),
                "head_dim": rng.choice([4, 4, 3, 6]),
                "expand": rng.choice([2, 2, 2, 3, 0]),
                "state_size": rng.choice([4, 4, 4, 0]),
                "n_groups": rng.choice([1, 2, 2, 3]),
                "chunk_size": rng.choice([4, 4, 4, "auto"]),
            }
            prefix = "backbone.layers.0.mixer."
        if i % 4 == 0:  # a config that builds: only the tensors are wrong
            config = {"model_type": "mamba2", "vocab_size": 16, "hidden_size": 8}
            config.update({"num_heads": 4, "head_dim": 4, "state_size": 4, "n_groups": 2})
            config["num_hidden_layers"] = 1
            prefix = "backbone.layers.0.mixer."
        here = folder / f"ssm{i}"
        here.mkdir()
        (here / "config.json").write_text(json.dumps(config))
        tensors = {
            prefix + "A_log": (rng.choice([[4], [5], [4, 1], []]), rng.choice(["F32", "BF16"])),
            prefix + "conv1d.weight": (
                rng.choice([[32, 1, 4], [24, 1, 4], [32, 4], [10**12, 1, 4]]),
                "BF16",
            ),
            prefix + "in_proj.weight": (rng.choice([[52, 8], [8, 52], [52]]), "BF16"),
        }
        header, offset = {}, 0
        for name, (shape, dtype) in tensors.items():
            size = {"I8": 1, "BF16": 2, "F32": 4}[dtype]
            for d in shape:
                size *= max(d, 0)
            size = size if size < 2**20 else 4  # a size past the file: its offsets refused
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
            offset += size
        header_file(here / "model.safetensors", header, bytes(offset))
        yield here


# -- GGUF files (llama.cpp): headers built byte by byte ---------------------------------------
def _gstr(text: str | bytes) -> bytes:
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(
    kvs: list[bytes] = (),  # type: ignore[assignment]
    tensors: list[tuple[bytes | str, list[int], int, int]] = (),  # type: ignore[assignment]
    data: bytes = b"",
    version: int = 3,
    counts: tuple[int, int] | None = None,
    pad: bool = True,
) -> bytes:
    """A GGUF file: the header, its keys (each already encoded), its tensor entries
    (name, ne, ggml type, offset), padding to 32 and ``data``."""
    n_tensors, n_kv = counts if counts is not None else (len(tensors), len(kvs))
    out = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + b"".join(kvs)
    for name, ne, kind, offset in tensors:
        out += _gstr(name) + struct.pack(f"<I{len(ne)}QIQ", len(ne), *ne, kind, offset)
    if pad:
        out += bytes(-len(out) % 32)
    return out + data


def gkv(key: str | bytes, kind: int, value: bytes) -> bytes:
    return _gstr(key) + struct.pack("<I", kind) + value


def gguf_files(folder: Path, rng: random.Random) -> Iterator[Path]:
    good = gguf_bytes(
        [
            gkv("general.architecture", 8, _gstr("llama")),
            gkv(
                "tokenizer.ggml.tokens",
                9,
                struct.pack("<IQ", 8, 3) + b"".join(_gstr(t) for t in ("a", "b", "c")),
            ),
        ],
        [("w.weight", [32, 2], 2, 0), ("n.weight", [4], 0, 64)],
        bytes(80),
    )
    made = 0

    def put(body: bytes) -> Path:
        nonlocal made
        made += 1
        path = folder / f"g{made}.gguf"
        path.write_bytes(body)
        return path

    yield put(good)
    for cut in sorted({*range(0, len(good), 7), len(good) - 1}):  # truncated everywhere
        yield put(good[:cut])
    huge = 2**64 - 1
    for counts in [(huge, 0), (0, huge), (2**40, 1), (1, 2**40), (10**6, 10**6)]:
        yield put(gguf_bytes(counts=counts))
    for version in (0, 1, 4, 2**32 - 1, 2**16):
        yield put(gguf_bytes(version=version))
    yield put(gguf_bytes([gkv("k", 8, struct.pack("<Q", huge))]))  # string past the file
    yield put(gguf_bytes([gkv("k", 8, struct.pack("<Q", 2**40) + b"x")]))
    for kind in (13, 255, 2**32 - 1):  # unknown value types, alone and in arrays
        yield put(gguf_bytes([gkv("k", kind, b"")]))
        yield put(gguf_bytes([gkv("k", 9, struct.pack("<IQ", kind, 1))]))
    for length in (huge, 2**40, 10**9):  # arrays longer than the file
        for item in (0, 8, 9, 12):
            yield put(gguf_bytes([gkv("k", 9, struct.pack("<IQ", item, length))]))
    for depth in (2, 8, 9, 50, 2000):  # arrays nested deep
        nested = struct.pack("<IQ", 0, 0)
        for _ in range(depth):
            nested = struct.pack("<IQ", 9, 1) + nested
        yield put(gguf_bytes([gkv("k", 9, nested)]))
    yield put(gguf_bytes([gkv(b"\xff\xfe", 4, bytes(4))]))  # a key that is no UTF-8
    yield put(gguf_bytes([gkv("k", 4, bytes(4)), gkv("k", 4, bytes(4))]))  # twice
    for value, kind in ((0, 4), (3, 4), (2**31 + 1, 4), (64, 10), (32, 5)):  # alignments
        code = {4: "<I", 10: "<Q", 5: "<i"}[kind]
        yield put(gguf_bytes([gkv("general.alignment", kind, struct.pack(code, value))]))
    for char in HOSTILE_CHARS:  # names and values printed back
        yield put(
            gguf_bytes(
                [
                    gkv("general.architecture", 8, _gstr(char * 3)),
                    gkv("general.name", 8, _gstr("[red]" + char)),
                ],
                [(f"a{char}.weight", [32], 0, 0)],
                bytes(128),
            )
        )
    entries: list[list[tuple[bytes | str, list[int], int, int]]] = [
        [("w", [32], 2**31, 0)],  # unknown ggml type
        [("w", [32], 4, 0)],  # type 4: removed (Q4_2)
        [("w", [2**62, 2**62], 0, 0)],  # dims past int64's numbers
        [("w", [2**64 - 1], 0, 0)],  # a dim past int64
        [("w", [1, 1, 1, 1, 1], 0, 0)],  # five dims
        [("w", [33], 2, 0)],  # Q4_0 rows not whole blocks
        [("w", [32], 0, 2**63)],  # data far past the file
        [("w", [32], 0, 3)],  # misaligned
        [("w", [32], 0, 0), ("v", [32], 0, 32)],  # overlapping (F32: 128 bytes each)
        [("w", [32], 0, 0), ("w", [32], 0, 128)],  # one name twice
        [("x" * 64, [32], 0, 0)],  # a name of 64 bytes
        [(b"\xff", [32], 0, 0)],  # a name that is no UTF-8
        [("w", [], 2, 0)],  # a block type of no dims
    ]
    for tensors in entries:
        yield put(gguf_bytes([], tensors, bytes(256)))
    for _ in range(40):  # random bytes after the magic
        yield put(b"GGUF" + rng.randbytes(rng.randint(0, 300)))
    for _ in range(30):  # random bytes flipped in a good file
        body = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(4, len(body))] = rng.randrange(256)
        yield put(bytes(body))


FAMILIES: dict[str, Callable[[Path, random.Random], Iterator[Path]]] = {
    "mxfp4": mxfp4,
    "state_space": state_space,
    "not_checkpoints": not_checkpoints,
    "links": links,
    "names": names,
    "deep_names": deep_names,
    "bad_entries": bad_entries,
    "structure": structure,
    "truncated": truncated,
    "many": many,
    "random_bytes": random_bytes,
    "torch": torch_files,
    "folders": folders,
    "gguf": gguf_files,
}


def check(path: Path, fmt: str) -> None:
    start = time.perf_counter()
    result = run(["inspect", str(path), "--format", fmt, "--depth", "3"])
    took = time.perf_counter() - start
    where = (path.name, fmt, result.exit_code)
    assert took < 10, (*where, f"{took:.1f} s")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        *where,
        repr(result.exception),
    )
    assert result.exit_code in (0, 1, 2), where
    for text in (result.stdout, result.stderr):
        text.encode("utf-8")  # printable: no lone surrogate reaches the terminal
        assert "\x1b" not in text and "\x07" not in text, where
        assert SECRET not in text and "root:" not in text and "PATH=" not in text, where
    if path.name.startswith("linked") and any(
        os.path.islink(p) and not os.path.realpath(p).startswith(os.path.realpath(path))
        for p in path.iterdir()
    ):
        assert result.exit_code == 2 and "leads outside the folder" in result.stderr, where
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (*where, result.stderr[:300])
        assert len(lines[0]) <= 700, (*where, len(lines[0]))
    else:
        assert result.stdout.strip(), where
        if fmt == "json":
            json.loads(result.stdout)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hostile_files_get_clean_answers(family: str, tmp_path: Path) -> None:
    rng = random.Random(family)
    made = list(FAMILIES[family](tmp_path, rng))
    for path in made:
        for fmt in ("table", "json"):
            check(path, fmt)


def test_there_are_over_a_thousand() -> None:
    """The families together make over a thousand files (counted without torch's, which
    need torch to write)."""
    import tempfile

    total = 0
    with tempfile.TemporaryDirectory() as folder:
        for family, make in FAMILIES.items():
            if family == "torch":
                total += 30 + 30 + 24 + 30
                continue
            total += sum(1 for _ in make(Path(folder), random.Random(family)))
    assert total >= 1000, total


@pytest.mark.parametrize("kind", ["bracket bomb", "list bomb", "shared references", "gguf strings"])
def test_peak_memory_stays_bounded(tmp_path: Path, kind: str) -> None:
    """The largest hostile files, inspected in a fresh process: the peak memory (the
    process's high-water resident set, VmHWM: its own, not the parent's it was forked
    from) stays under 700 MB and the time under 10 s."""
    if kind == "bracket bomb":  # 100 MB of empty objects in a list, inside the header
        body = b'{"a":[' + b"{}," * 33_000_000 + b"{}]}"
        path = tmp_path / "bomb.safetensors"
        path.write_bytes(struct.pack("<Q", len(body)) + body)
    elif kind == "gguf strings":  # 4 million empty strings in one array, and one more
        n = 4_000_001
        body = gguf_bytes([gkv("k", 9, struct.pack("<IQ", 8, n) + bytes(8 * n))])
        path = tmp_path / "strings.gguf"
        path.write_bytes(body)
    elif kind == "list bomb":
        body = b"[" + b"[]," * 33_000_000 + b"[]]"
        path = tmp_path / "bomb.safetensors"
        path.write_bytes(struct.pack("<Q", len(body)) + body)
    else:
        torch = pytest.importorskip("torch")
        x: Any = [torch.zeros(2)]
        for _ in range(60):
            x = [x, x]
        path = tmp_path / "shared.pt"
        torch.save({"x": x}, path)
    code = (
        "import resource, sys\n"
        "from shapecalc.cli import cli\n"
        "try:\n"
        "    cli(['inspect', sys.argv[1], '--format', 'json'], prog_name='shapecalc')\n"
        "except SystemExit:\n"
        "    pass\n"
        "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "print(peak[0].split()[1] if peak else "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "100"},
    )
    took = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    peak_mb = int(lines[-1]) / 1024
    assert peak_mb < 700, (kind, peak_mb)
    assert took < 10, (kind, took)
    assert len(lines) <= 2, lines  # one line of error at most, then the measurement


@pytest.mark.parametrize("legacy", [False, True])
def test_old_pickle_protocols_are_one_line(tmp_path: Path, legacy: bool) -> None:
    """torch warns of old pickle protocols; the warning stays off the output, and the
    refusal says why."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "old.pt"
    torch.save(
        {"w": torch.zeros(2)}, path, pickle_protocol=1, _use_new_zipfile_serialization=not legacy
    )
    result = run(["inspect", str(path)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "pickle protocol older than 2" in result.stderr or "not plain tensors" in result.stderr


@pytest.mark.parametrize("target", ["token", "/proc/self/environ", "/etc/passwd"])
def test_a_hub_caches_links_stay_inside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    """refs/main and a snapshot's files may link inside the cache repo (to blobs/), never
    outside it; what a ref holds is never echoed."""
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "blobs").mkdir()
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    config = {
        "model_type": "llama",
        "vocab_size": 16,
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 8,
    }
    (repo / "blobs" / "c0ffee").write_text(json.dumps(config))
    (snapshot / "config.json").symlink_to("../../blobs/c0ffee")
    (cache / "token").write_text(SECRET)
    secret = str(cache / "token") if target == "token" else target
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    (repo / "refs" / "main").write_text("abc123")
    assert run(["hf", "acme/tiny"]).exit_code == 0  # links to blobs/ are followed
    (repo / "refs" / "main").unlink()
    (repo / "refs" / "main").symlink_to(secret)
    for args in (["hf", "acme/tiny"], ["inspect", "acme/tiny"]):
        result = run(args)
        assert result.exit_code == 2 and "leads outside the folder" in result.stderr
        assert SECRET not in result.stderr and "PATH=" not in result.stderr
    (repo / "refs" / "main").unlink()
    (repo / "refs" / "main").write_text(SECRET)  # a ref holding anything: not echoed
    result = run(["hf", "acme/tiny"])
    assert result.exit_code == 2 and SECRET not in result.stderr, result.stderr
    (repo / "refs" / "main").write_text("abc123")
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(secret)
    result = run(["hf", "acme/tiny"])
    assert result.exit_code == 2 and "leads outside the folder" in result.stderr


ESCAPES = "\x1b]8;;http://x.example\x1b\\link\x1b]8;;\x1b\\ \x1b[2J \u202eevil \x07"


@pytest.mark.parametrize("fmt", ["table", "json"])
@pytest.mark.parametrize("allow", [[], ["--allow-field", "quantization_config"]])
def test_a_configs_quantization_text_is_escaped(tmp_path: Path, fmt: str, allow: list[str]) -> None:
    config = {
        "model_type": "llama",
        "vocab_size": 16,
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 8,
        "quantization_config": {"quant_method": ESCAPES, "bits": ESCAPES},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    header_file(tmp_path / "model.safetensors", {"w": entry([2])}, bytes(8))
    for args in (["inspect", str(tmp_path)], ["hf", str(tmp_path), *allow]):
        result = run([*args, "--format", fmt])
        for text in (result.stdout, result.stderr):
            assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text, args


TRILLION = 10**12
TINY = {
    "vocab_size": 16,
    "hidden_size": 8,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "intermediate_size": 8,
}


@pytest.mark.parametrize(
    "case",
    [
        "hf --memory",
        "hf --memory --training adamw --explain",
        "hf --memory --format json",
        "sweep hf",
        "sweep hf --show training",
        "inspect experts",
        "inspect deepseek experts",
        "inspect layers",
        "hf qwen-moe runs",
        "hf jamba runs",
        "hf qwen3-next runs",
        "hf gemma3 runs",
        "hf cohere2 runs",
        "lstm --memory",
        "port lstm",
    ],
)
def test_a_tiny_config_of_huge_counts_costs_what_a_small_one_does(
    tmp_path: Path, case: str
) -> None:
    """A 200-byte config of 10^12 layers (or 1.6 million experts against a one-tensor
    folder), in a fresh process: every analysis is as flat in the count as the plain
    count is; what must list every tensor refuses in one line."""
    layers = {"model_type": "llama", **TINY, "num_hidden_layers": TRILLION}
    experts = {
        "model_type": "mixtral",
        **TINY,
        "num_hidden_layers": 1,
        "num_local_experts": 1_600_000,
        "num_experts_per_tok": 2,
    }
    deepseek = {  # DeepSeek-V3's fp8 download: experts one by one in the checkpoint layout
        "model_type": "deepseek_v3",
        **TINY,
        "num_hidden_layers": 2,
        "num_key_value_heads": TINY.get("num_attention_heads", 1),
        "n_routed_experts": 1_600_000,
        "first_k_dense_replace": 1,
        "n_group": 1,
        "topk_group": 1,
        "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]},
    }
    qwen = {  # a trillion layers, the dense ones among them far apart: runs, not a list
        "model_type": "qwen3_moe",
        **TINY,
        "num_hidden_layers": TRILLION,
        "moe_intermediate_size": 4,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "decoder_sparse_step": 3,
        "mlp_only_layers": [5, 10**11 - 1, TRILLION - 1],
    }
    hybrid = {  # a trillion attention and Mamba layers, experts every other one: 8 runs
        "model_type": "jamba",
        **TINY,
        "num_hidden_layers": TRILLION,
        "num_experts": 4,
        "mamba_d_state": 2,
    }
    linear = {  # a trillion layers of linear and full attention, the dense ones far apart
        "model_type": "qwen3_next",
        **TINY,
        "num_hidden_layers": TRILLION,
        "head_dim": 4,
        "linear_num_key_heads": 1,
        "linear_num_value_heads": 2,
        "linear_key_head_dim": 4,
        "linear_value_head_dim": 4,
        "moe_intermediate_size": 4,
        "shared_expert_intermediate_size": 4,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "full_attention_interval": 3,
        "mlp_only_layers": [5, 10**11 - 1],
    }
    sliding = {  # a trillion layers, sliding and global: runs a step apart, not a list
        "model_type": "gemma3_text" if "gemma3" in case else "cohere2",
        **TINY,
        "num_hidden_layers": TRILLION,
        "sliding_window": 4,
        "head_dim": 4,
    }
    chosen = (
        sliding
        if "gemma3" in case or "cohere2" in case
        else deepseek
        if "deepseek" in case
        else hybrid
        if "jamba" in case
        else linear
        if "qwen3-next" in case
        else qwen
        if "qwen" in case
        else experts
        if "experts" in case
        else layers
    )
    (tmp_path / "config.json").write_text(json.dumps(chosen))
    header_file(tmp_path / "model.safetensors", {"w": entry([2])}, bytes(8))
    folder = str(tmp_path)
    at = ["--batch", "1", "--seq-len", "8"]
    args = {
        "hf --memory": ["hf", folder, "--memory", *at],
        "hf --memory --training adamw --explain": [
            "hf", folder, "--memory", *at, "--training", "adamw", "--explain"
        ],
        "hf --memory --format json": ["hf", folder, "--memory", *at, "--format", "json"],
        "sweep hf": ["sweep", "hf", folder, "--seq-len", "8,16", "--batch", "2"],
        "sweep hf --show training": [
            "sweep", "hf", folder, "--seq-len", "8,16", "--batch", "2", "--show", "training"
        ],
        "inspect experts": ["inspect", folder],
        "inspect deepseek experts": ["inspect", folder],
        "inspect layers": ["inspect", folder],
        "hf qwen-moe runs": ["hf", folder, "--memory", *at, "--explain"],
        "hf jamba runs": ["hf", folder, "--memory", *at, "--explain"],
        "hf qwen3-next runs": ["hf", folder, "--memory", *at, "--explain"],
        "hf gemma3 runs": ["hf", folder, "--memory", *at, "--explain"],
        "hf cohere2 runs": ["hf", folder, "--memory", *at, "--explain"],
        "lstm --memory": ["lstm", "--vocab", "5", "--hidden", "8", "--layers", str(TRILLION),
                          "--memory", *at],
        "port lstm": ["port", "lstm", "--vocab", "5", "--hidden", "8", "--layers",
                      str(TRILLION), "--to", "keras"],
    }[case]  # fmt: skip
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))\n"
        "from shapecalc.cli import cli\n"
        "cli(sys.argv[1:], prog_name='shapecalc')\n"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "100"},
    )
    took = time.perf_counter() - start
    assert took < 20, (case, took)
    assert done.returncode in (0, 1, 2), (case, done.returncode, done.stderr[-500:])
    assert "Traceback" not in done.stderr, (case, done.stderr[-500:])
    if done.returncode == 2:
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (case, done.stderr[:500])
