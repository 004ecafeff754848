"""Reading checkpoints: safetensors headers (without torch), torch state dicts, and
malformed or hostile files refused with a clear error."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shapecalc.adapters.checkpoint import (
    DTYPE_SIZES,
    MAX_HEADER,
    CheckpointError,
    read_checkpoint,
)
from shapecalc.adapters.checkpoint import TORCH_DTYPES as SPELLED
from shapecalc.core.errors import ShapecalcError
from tests.test_cli import run

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
from safetensors import safe_open  # noqa: E402  (after the skip above)

TORCH_DTYPES = [
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int8,
    torch.uint8,
    torch.bool,
    torch.float64,
    torch.int32,
]
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[a-z0-9_]{1,6}){0,3}", fullmatch=True)


def handmade(path: Path, header: Any, data: bytes = b"", length: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    size = len(raw) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + raw + data)
    return path


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(
    tensors=st.dictionaries(
        NAME,
        st.tuples(st.sampled_from(TORCH_DTYPES), st.lists(st.integers(0, 4), max_size=3)),
        min_size=1,
        max_size=6,
    )
)
def test_header_reader_agrees_with_the_safetensors_package(
    tmp_path: Path, tensors: dict[str, Any]
) -> None:
    path = tmp_path / "generated.safetensors"
    safetensors_torch.save_file(
        {name: torch.zeros(shape, dtype=dtype) for name, (dtype, shape) in tensors.items()},
        str(path),
        metadata={"format": "pt"},
    )
    ours = read_checkpoint(str(path))
    with safe_open(str(path), framework="pt") as handle:
        theirs = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
        dtypes = {k: handle.get_slice(k).get_dtype() for k in handle.keys()}  # noqa: SIM118
        metadata = handle.metadata()
    assert {t.name: t.shape for t in ours.tensors} == theirs
    assert {t.name: t.dtype for t in ours.tensors} == {k: SPELLED[d] for k, d in dtypes.items()}
    # and the torch dtype the safetensors package loads each as
    assert {t.name: t.dtype for t in ours.tensors} == {
        name: str(dtype).removeprefix("torch.") for name, (dtype, _) in tensors.items()
    }
    assert ours.metadata == metadata
    assert ours.nbytes == sum(
        torch.zeros(shape, dtype=dtype).element_size() * torch.zeros(shape).numel()
        for dtype, shape in tensors.values()
    )


def test_handmade_safetensors(tmp_path: Path) -> None:
    header = {
        "__metadata__": {"source": "by hand"},
        "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "BF16", "shape": [3], "data_offsets": [24, 30]},
    }
    path = handmade(tmp_path / "hand.safetensors", header, bytes(30))
    checkpoint = read_checkpoint(str(path))
    assert [(t.name, t.dtype, t.shape, t.nbytes) for t in checkpoint.tensors] == [
        ("w", "float32", (2, 3), 24),
        ("b", "bfloat16", (3,), 6),
    ]
    assert checkpoint.total == 9 and checkpoint.bytes_by_dtype() == {"float32": 24, "bfloat16": 6}


@pytest.mark.parametrize(
    ("header", "data", "length", "message"),
    [
        (b"{", b"", 10**9, "over the 104,857,600 cap"),
        (b"", b"", 10**9, "not a safetensors file"),
        (b"{}", b"", 500, "runs past the end of the file"),
        (b"{not json", b"", None, "the header is not valid JSON"),
        (b"[1, 2]", b"", None, "not a safetensors file"),
        (b"\xff\xfe{}", b"", None, "not a safetensors file"),
        (b"{} x", b"", None, "not valid JSON"),
        (
            {"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}},
            bytes(4),
            None,
            "unknown dtype 'F33'",
        ),
        (
            {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
            bytes(4),
            None,
            "shape must be a list of non-negative integers",
        ),
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}},
            bytes(4),
            None,
            "needs 8 bytes but data_offsets give 4",
        ),
        (
            {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 400]}},
            bytes(4),
            None,
            "lie outside the data",
        ),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            bytes(12),
            None,
            "overlap",
        ),
        (
            {"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
            bytes(8),
            None,
            "leave a gap of 4 bytes",
        ),
        (
            {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
            bytes(8),
            None,
            "the tensors cover 4 bytes but the data holds 8",
        ),
        ({"__metadata__": {"a": 1}}, b"", None, "__metadata__ must map strings to strings"),
        (
            {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}},
            bytes(4),
            None,
            "data_offsets must be two integers",
        ),
        (b"[" * 100_000 + b"]" * 100_000, b"", None, "not a safetensors file"),
        (b"{" + b"[" * 100_000 + b"]" * 100_000, b"", None, "not a table of tensors"),
    ],
)
def test_malformed_safetensors_are_refused(
    tmp_path: Path, header: Any, data: bytes, length: int | None, message: str
) -> None:
    path = handmade(tmp_path / "bad.safetensors", header, data, length)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(str(path))


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="too short for a safetensors header"):
        read_checkpoint(str(path))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda n, body: struct.pack("<Q", n) + body,
            st.one_of(st.integers(0, 300), st.integers(0, 2**64 - 1)),
            st.binary(max_size=200),
        ),
        st.builds(
            lambda header, extra: struct.pack("<Q", len(header)) + header + extra,
            st.recursive(
                st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
                lambda inner: st.one_of(
                    st.lists(inner, max_size=3),
                    st.dictionaries(st.text(max_size=5), inner, max_size=3),
                ),
                max_leaves=10,
            ).map(lambda v: json.dumps(v).encode()),
            st.binary(max_size=64),
        ),
    )
)
def test_fuzzed_files_raise_only_shapecalc_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(data)
    with contextlib.suppress(ShapecalcError):  # anything else fails the test
        read_checkpoint(str(path))


def test_header_only_no_torch_no_full_read(tmp_path: Path) -> None:
    # a sparse file with a small header and 10 GB of "data": inspected at once
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [2500, 1_000_000], "data_offsets": [0, 10_000_000_000]}}
    ).encode()
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + 10_000_000_000)
    code = (
        "import sys\n"
        "from shapecalc.adapters.targets import inspect_target\n"
        f"result = inspect_target({str(path)!r})\n"
        "print(result.total, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2500000000", "False"]


def test_torch_state_dicts(tmp_path: Path) -> None:
    state = {"w": torch.zeros(2, 3), "block": {"b": torch.ones(5, dtype=torch.float16)}}
    new = tmp_path / "new.pt"
    torch.save(state, new)
    legacy = tmp_path / "legacy.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    for path in (new, legacy):
        checkpoint = read_checkpoint(str(path))
        assert [(t.name, t.shape, t.dtype) for t in checkpoint.tensors] == [
            ("w", (2, 3), "float32"),
            ("block.b", (5,), "float16"),
        ]
    model = torch.nn.LSTM(4, 8)
    torch.save(model.state_dict(), tmp_path / "lstm.bin")
    names = [t.name for t in read_checkpoint(str(tmp_path / "lstm.bin")).tensors]
    assert names == [n for n, _ in model.named_parameters()]


class _Payload:
    def __reduce__(self) -> Any:
        return (print, ("this would run",))


@pytest.mark.parametrize("content", ["pickle", "garbage"])
def test_hostile_or_broken_state_dicts_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.pt"
    if content == "pickle":
        torch.save({"x": _Payload()}, path)
        message = "a pickle that would run code"
    else:
        path.write_bytes(b"PK\x03\x04 not really a zip")
        message = "could not read it"
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(str(path))


def test_inspect_command(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    safetensors_torch.save_file(
        {
            "enc.0.weight": torch.zeros(4, 3),
            "enc.0.bias": torch.zeros(4),
            "head.weight": torch.zeros(2, 4, dtype=torch.bfloat16),
        },
        str(path),
    )
    table = run(["inspect", str(path)], 120)
    assert table.exit_code == 0, table.output
    assert "24 parameters" in table.stdout and "bfloat16" in table.stdout
    report = json.loads(run(["inspect", str(path), "--format", "json"]).stdout)
    assert report["total"] == 24 and report["bytes_by_dtype"] == {"float32": 64, "bfloat16": 16}
    bad = handmade(tmp_path / "bad.safetensors", b"{}", b"", 10**12)
    result = run(["inspect", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Invalid value for 'TARGET': bad.safetensors:")
    assert len(result.stderr.splitlines()) == 1


def test_inspect_a_module_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "user_models.py").write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Embedding(100, 16), nn.LSTM(16, 32, 2), nn.Linear(32, 100))\n"
        "broken = 3\n"
    )
    monkeypatch.chdir(tmp_path)
    report = json.loads(run(["inspect", "user_models:build", "--format", "json"]).stdout)
    assert report["total"] == 1_600 + 14_848 + 3_300
    assert {t["kind"] for t in report["tensors"]} == {"Embedding", "LSTM", "Linear"}
    assert run(["inspect", "user_models:build", "--depth", "1"], 120).exit_code == 0
    for target, fragment in [
        ("user_models:broken", "user_models:broken is an int: TARGET names an nn.Module"),
        ("user_models:missing", "has no attribute missing"),
        ("no_such_module:x", "cannot import no_such_module"),
    ]:
        result = run(["inspect", target])
        assert result.exit_code == 2 and fragment in result.stderr, result.stderr


def test_buffers_are_told_apart_by_name(tmp_path: Path) -> None:
    path = tmp_path / "bn.safetensors"
    bn = torch.nn.BatchNorm2d(3)
    state = {f"features.{k}": v for k, v in bn.state_dict().items()}
    safetensors_torch.save_file({**state, "head.running_meanish": torch.zeros(2)}, str(path))
    checkpoint = read_checkpoint(str(path))
    assert checkpoint.buffer_total == sum(b.numel() for b in bn.buffers()) == 7
    assert checkpoint.parameter_total == sum(p.numel() for p in bn.parameters()) + 2 == 8
    assert checkpoint.total == 15


def test_dtype_table_is_complete_for_torch_types() -> None:
    assert DTYPE_SIZES["BF16"] == 2 and DTYPE_SIZES["F8_E4M3"] == 1
    assert MAX_HEADER == 100 * 1024 * 1024


def test_tensors_are_listed_in_the_files_data_order(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    }
    checkpoint = read_checkpoint(str(handmade(tmp_path / "m.safetensors", header, bytes(12))))
    assert [t.name for t in checkpoint.tensors] == ["b", "a"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("text.pt", b"hello, this is text\n", "text.pt: not a PyTorch checkpoint"),
        ("text.bin", b"101 dalmatians", "text.bin: not a PyTorch checkpoint"),
        ("empty.pt", b"", "empty.pt: the file is empty"),
        ("empty.safetensors", b"", "empty.safetensors: the file is empty"),
        ("text.safetensors", b"hello world, not a header", "not a safetensors file"),
    ],
)
def test_files_that_are_not_checkpoints_say_so(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as caught:
        read_checkpoint(str(path))
    assert "claims" not in str(caught.value)  # no bytes of the file echoed as a length
    result = run(["inspect", str(path)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr


def test_a_missing_files_message_keeps_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a path relative to the test's folder: the message's length is the path's, not that of
    # wherever pytest put the folder (pytest-xdist's workers nest it one level deeper)
    monkeypatch.chdir(tmp_path)
    path = os.path.join(".", "nowhere", "model.pt")
    result = run(["inspect", str(path)])
    assert result.exit_code == 2 and f"{path}: no such file" in result.stderr


def test_a_product_of_in_range_dims_past_the_digit_limit(tmp_path: Path) -> None:
    header = {"w": {"dtype": "F32", "shape": [10**4000, 10**4000], "data_offsets": [0, 4]}}
    path = handmade(tmp_path / "m.safetensors", header, bytes(4))
    with pytest.raises(CheckpointError, match="digits bytes but data_offsets give 4"):
        read_checkpoint(str(path))


def test_dtypes_are_spelled_one_way_across_formats(tmp_path: Path) -> None:
    """A safetensors file's F32 and a torch.save file's torch.float32 are both float32."""
    tensors = {"w": torch.zeros(2, 3), "b": torch.zeros(3, dtype=torch.bfloat16)}
    safetensors_torch.save_file(tensors, str(tmp_path / "m.safetensors"))
    torch.save(tensors, tmp_path / "m.pt")
    read = [read_checkpoint(str(tmp_path / n)) for n in ("m.safetensors", "m.pt")]
    spelled = [{t.name: t.dtype for t in c.tensors} for c in read]
    assert spelled[0] == spelled[1] == {"w": "float32", "b": "bfloat16"}
