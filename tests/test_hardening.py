"""What an adversarial trial found past the fuzz and the hostile files: unreadable
folders and files, a terminal that cannot show the formulas' characters, a full disk,
layer counts that would take minutes, padding torch refuses, trees nested past Python's
recursion. Each now answers in one line, at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import shapecalc as sc
from tests.test_cli import run


def test_an_unreadable_folder_is_one_line(tmp_path: Path, monkeypatch: Any) -> None:
    folder = tmp_path / "d"
    folder.mkdir()

    def refuse(path: Any) -> list[str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "listdir", refuse)
    for fmt in ("table", "json"):
        result = run(["inspect", str(folder), "--format", fmt])
        assert result.exit_code == 2 and "Permission denied" in result.stderr
        assert len(result.stderr.splitlines()) == 1


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="Linux's /proc")
def test_a_file_that_fails_to_read_is_one_line() -> None:
    result = run(["inspect", "/proc/self/mem"])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_terminal_without_the_formulas_characters(encoding: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shapecalc",
            "gpt2",
            "--vocab",
            "V",
            "--hidden",
            "H",
            "--layers",
            "L",
            "--heads",
            "A",
        ],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": encoding},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-300:]
    assert b"Traceback" not in done.stderr
    shown = b"\\xb7" if encoding == "ascii" else "·".encode(encoding)  # escaped, or itself
    assert shown in done.stdout


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="Linux's /dev/full")
def test_a_full_disk_is_one_line() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "shapecalc",
                "lstm",
                "--layers",
                "2",
                "--hidden",
                "512",
                "--vocab",
                "65",
            ],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "No space left" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["mlp", "--inputs", "3", "--hidden", "4", "--outputs", "2", "--layers", "100000"],
        [
            "solve",
            "mlp",
            "--params",
            "1e6",
            "--inputs",
            "784",
            "--outputs",
            "10",
            "--for",
            "layers",
            "--hidden",
            "1",
        ],
        [
            "layer",
            "lstm",
            "--input-size",
            "3",
            "--hidden-size",
            "4",
            "--num-layers",
            "100000",
            "--verify",
        ],
        ["lstm", "--vocab", "3", "--hidden", "4", "--layers", "20000", "--verify"],
    ],
)
def test_what_would_take_minutes_is_refused_at_once(args: list[str]) -> None:
    start = time.perf_counter()
    result = run(args)
    assert time.perf_counter() - start < 5
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output[:300]


@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate", "zeros"])
@pytest.mark.parametrize("padding", [1, 4, 5, 6, 9])
def test_padding_torch_refuses_is_refused(mode: str, padding: int) -> None:
    """The padding modes' rules against torch's own forward, on a 5 × 5 input."""
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv2d(3, 4, 3, padding=padding, padding_mode=mode)
    try:
        expected: Any = tuple(conv(torch.zeros(1, 3, 5, 5)).shape)
    except (RuntimeError, ValueError):
        expected = None
    spec = sc.Conv2d(3, 4, 3, padding=padding, padding_mode=mode)
    try:
        got: Any = spec.output_shapes((1, 3, 5, 5))[0]
    except sc.ShapeError:
        got = None
    assert got == expected


def test_trees_and_flows_nested_past_recursion_are_refused() -> None:
    node: Any = sc.Linear(4, 4)
    for _ in range(200):
        node = sc.Block("X", {"a": node})
    with pytest.raises(sc.InvalidArgumentError, match="nest at most 64 deep"):
        sc.Model("m", node)
    flow: Any = sc.chain("a")
    for _ in range(500):
        flow = sc.chain(flow)
    with pytest.raises(sc.InvalidArgumentError, match="nest at most 64 deep"):
        sc.Model("m", sc.Block("B", {"a": sc.Linear(4, 4)}, flow=flow))
    shallow: Any = sc.Linear(4, 4)
    for _ in range(30):  # a deep but real nesting still counts
        shallow = sc.Block("X", {"a": shallow})
    assert sc.Model("m", shallow).total == 20


def test_layouts_and_substitutions_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="input_layout"):
        sc.Model("m", {"a": sc.Linear(4, 4)}, input_layout="B,4")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="subs"):
        sc.symbol("H").subs(None)  # type: ignore[arg-type]


def test_a_fifo_is_not_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "x.safetensors"
    os.mkfifo(fifo)
    result = run(["inspect", str(fifo)])
    assert result.exit_code == 2 and "not a regular file" in result.stderr
    assert json.dumps(result.stderr)  # one printable line


def test_verify_without_torch_prints_nothing_before_its_error(monkeypatch: Any) -> None:
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else found(name, *a)
    )
    result = run(["lstm", "--layers", "2", "--hidden", "512", "--vocab", "65", "--verify"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "needs PyTorch" in result.stderr and len(result.stderr.splitlines()) == 1
