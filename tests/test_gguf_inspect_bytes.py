"""``inspect FILE.gguf`` as a table: every tensor and group with its bytes as stored; a
hostile header refused in one line (a non-string architecture, a string that is not
UTF-8, two tensors of one name, an empty one among them); counts of one in the
singular; the matched line's total said to be of every tensor the metadata implies."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from tests.test_cli import run

gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")

WIDTHS = [80, 200]


def quantized(path: Path) -> None:
    """A small file of four ggml types (no architecture shapecalc checks): block types
    written as gguf-py writes them, their rows as bytes of whole blocks."""
    T, sizes = gguf.GGMLQuantizationType, gguf.GGML_QUANT_SIZES
    writer = gguf.GGUFWriter(str(path), "nonesuch")
    for name, shape, kind in [
        ("token_embd.weight", (32, 256), T.Q8_0),
        ("output_norm.weight", (256,), T.F32),
        ("blk.0.attn_q.weight", (256, 256), T.Q4_K),
        ("blk.0.ffn_down.weight", (256, 512), T.Q6_K),
        ("blk.1.attn_q.weight", (256, 256), T.Q5_K),
    ]:
        if kind == T.F32:
            writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
            continue
        block, nbytes = sizes[kind]
        raw = (*shape[:-1], shape[-1] // block * nbytes)
        writer.add_tensor(name, np.zeros(raw, dtype=np.uint8), raw_shape=raw, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _said(output: str) -> str:
    """The tree's text with its corners and continuation lines joined."""
    return " ".join(re.sub(r"[│├└─]", " ", output).split())


@pytest.mark.parametrize("width", WIDTHS)
def test_each_tensor_and_group_gives_its_bytes(width: int, tmp_path: Path) -> None:
    """Before: the tree gave each tensor's count and type, not its bytes."""
    path = tmp_path / "q.gguf"
    quantized(path)
    reader = gguf.GGUFReader(str(path))  # gguf-py's own bytes of each tensor
    stored = {t.name: int(t.n_bytes) for t in reader.tensors}
    result = run(["inspect", str(path), "--depth", "4"], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.output.splitlines())
    said = _said(result.output)
    for name, nbytes in stored.items():
        ggml = reader.tensors[[t.name for t in reader.tensors].index(name)].tensor_type.name
        assert f"{name.split('.')[-1]} " in said
        assert f"{ggml} {nbytes:,} bytes" in said, (name, said)
    block = sum(n for name, n in stored.items() if name.startswith("blk.0."))
    blocks = sum(n for name, n in stored.items() if name.startswith("blk."))
    assert re.search(rf"\b0 [\d,]+ \([\d.]+%\) {block:,} bytes", said), said
    assert re.search(rf"blk [\d,]+ \([\d.]+%\) {blocks:,} bytes", said), said
    assert re.search(rf"attn_q [\d,]+ \([\d.]+%\) {stored['blk.1.attn_q.weight']:,}", said)
    # a group cut at depth 1 sums every tensor under it
    shallow = _said(run(["inspect", str(path), "--depth", "1"], width).output)
    assert re.search(rf"blk [\d,]+ \([\d.]+%\) {blocks:,} bytes", shallow), shallow


def test_a_safetensors_tree_is_unchanged(tmp_path: Path) -> None:
    """The bytes are a GGUF file's (a block type's are not its count times a size)."""
    from safetensors.numpy import save_file

    save_file({"a.weight": np.zeros((4, 4), dtype=np.float32)}, str(tmp_path / "m.safetensors"))
    result = run(["inspect", str(tmp_path / "m.safetensors")], 80)
    assert result.exit_code == 0, result.output
    assert "bytes" not in result.output.split("\n", 2)[-1]


def _s(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def _header(tensors: int, keys: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, keys)


def _one_line_error(path: Path, width: int) -> str:
    result = run(["inspect", str(path)], width)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("width", WIDTHS)
def test_an_architecture_that_is_no_string_is_refused(width: int, tmp_path: Path) -> None:
    """Before: listed with exit 0, "general.architecture is missing". llama.cpp reads the
    key only as a string (ggml/src/gguf.cpp, gguf_get_val_str asserts the type)."""
    path = tmp_path / "a.gguf"
    path.write_bytes(_header(0, 1) + _s(b"general.architecture") + struct.pack("<II", 4, 5))
    reader = gguf.GGUFReader(str(path))  # gguf-py reads it: a uint32
    assert reader.fields["general.architecture"].types == [gguf.GGUFValueType.UINT32]
    line = _one_line_error(path, width)
    assert "general.architecture = 5 (uint32)" in line and "named by a string" in line


#: a tokenizer's strings (more than inspect keeps: checked without being kept), each UTF-8
TOKENS = [f"tok{i}\u0120é".encode() for i in range(100)]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("where", ["architecture", "name", "array", "long", "split"])
def test_a_string_that_is_not_utf8_is_refused(width: int, where: str, tmp_path: Path) -> None:
    """Before: decoded with replacement characters and printed, exit 0. gguf-py decodes
    every string strictly (ReaderField.contents): it refuses the same bytes. ``split``:
    one character cut over two strings, whose concatenation alone is UTF-8."""
    bad = b"\xff\xfe\x00a"
    arch = bad if where == "architecture" else b"llama"
    kv = _s(b"general.architecture") + struct.pack("<I", 8) + _s(arch)
    keys = 1
    if where == "name":
        kv += _s(b"general.name") + struct.pack("<I", 8) + _s(bad)
        keys += 1
    if where in ("array", "long", "split"):  # the third of a few strings, or the 71st
        items = {
            "array": [b"a", b"b", bad],
            "long": [*TOKENS[:70], bad, *TOKENS[70:]],
            "split": [*TOKENS[:70], "é".encode()[:1], "é".encode()[1:], *TOKENS[70:]],
        }[where]
        kv += _s(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, len(items))
        kv += b"".join(_s(item) for item in items)
        keys += 1
    path = tmp_path / "u.gguf"
    path.write_bytes(_header(0, keys) + kv)
    key = {"architecture": "general.architecture", "name": "general.name"}.get(
        where, "tokenizer.ggml.tokens"
    )
    with pytest.raises(UnicodeDecodeError):
        field = gguf.GGUFReader(str(path)).fields[key]
        field.contents()
    line = _one_line_error(path, width)
    assert f"metadata {key}: a string is not valid UTF-8" in line
    assert "\ufffd" not in line and "GGUF's strings are UTF-8" in line


@pytest.mark.parametrize("longest", [5, 300])
def test_a_long_array_of_utf8_strings_is_read(longest: int, tmp_path: Path) -> None:
    """Strings of 128 bytes or more are checked one by one; every one is UTF-8 here."""
    tokens = [*(t.decode() for t in TOKENS), "é" * (longest // 2)]
    path = tmp_path / "ok.gguf"
    writer = gguf.GGUFWriter(str(path), "nonesuch")
    writer.add_token_list(tokens)
    writer.add_tensor("a.weight", np.zeros((4,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert len(gguf.GGUFReader(str(path)).fields["tokenizer.ggml.tokens"].contents()) == 101
    result = run(["inspect", str(path)], 80)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", [b"t.weight", b""])
def test_a_name_listed_twice_is_said_by_its_entries(
    width: int, name: bytes, tmp_path: Path
) -> None:
    """Before: "tensor  is listed twice", an empty name shown as nothing."""
    entry = _s(name) + struct.pack("<IQIQ", 1, 256, 0, 0)
    kv = _s(b"general.architecture") + struct.pack("<I", 8) + _s(b"llama")
    path = tmp_path / "d.gguf"
    path.write_bytes(_header(2, 1) + kv + entry + entry + bytes(2048))
    line = _one_line_error(path, width)
    if name:
        assert "tensor t.weight is listed twice (tensor entries 0 and 1)" in line
    else:
        assert "tensor entries 0 and 1 both have an empty name" in line
    assert "names must differ" in line and "tensor  " not in line


@pytest.mark.parametrize("width", WIDTHS)
def test_counts_of_one_are_singular(width: int, tmp_path: Path) -> None:
    path = tmp_path / "one.gguf"
    writer = gguf.GGUFWriter(str(path), "nonesuch")
    writer.add_tensor("a.weight", np.zeros((4,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert len(gguf.GGUFReader(str(path)).fields) == 4  # the header's 3 and one key
    result = run(["inspect", str(path)], width)
    said = " ".join(result.output.split())
    assert "1 metadata key ·" in said and "1 tensor ·" in said, said
    assert "F32 1 tensor ·" in said
    assert "1 tensors" not in said and "1 metadata keys" not in said
    claims = tmp_path / "claims.gguf"  # one key claimed, not one byte for it
    claims.write_bytes(_header(0, 1) + b"abc")
    line = _one_line_error(claims, width)
    assert "the header claims 1 metadata key;" in line, line


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("drop", ["", "ffn_down.weight"])
def test_the_matched_total_is_of_every_implied_tensor(
    width: int, drop: str, tmp_path: Path
) -> None:
    """Before: "matched 19 of the 21 ..., which hold N", N read as the 19's."""
    from tests.test_trial_wording import tiny_llama

    _, implied = tiny_llama(tmp_path / "t.gguf", drop)
    said = " ".join(run(["inspect", str(tmp_path / "t.gguf")], width).output.split())
    matched = 21 - (2 if drop else 0)
    assert (
        f"matched {matched} of the 21 tensors the metadata implies; all 21 hold {implied:,} "
        "numbers" in said
    ), said
