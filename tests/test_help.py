"""Every command's ``--help`` (every ``layer KIND`` too) reads as help for a command line:
no reST markup, flags rather than Python arguments, every option described; and the
messages a newcomer met first (solve's step and its follow-up command, kv heads above
heads)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest

from shapecalc.cli import cli
from tests.test_cli import run

#: a Python keyword argument (head="mlm", padding_mode='zeros') in help text
PYTHON_ARGUMENT = re.compile(r"\b\w+=[\"']")


def _commands(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1] if path else "shapecalc")
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, (*path, name))


def _resolve(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return command


PATHS = list(_commands(cli, ()))


def test_the_walk_reaches_every_group_and_layer_kind() -> None:
    from shapecalc.layers import LAYER_KINDS

    assert {("layer", kind.lower()) for kind in LAYER_KINDS} <= set(PATHS)
    for group in ("solve", "sweep", "port", "compare-conventions"):
        assert (group, "lstm") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "shapecalc")
def test_help_is_plain_and_every_option_is_described(path: tuple[str, ...]) -> None:
    result = run([*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "``" not in result.output
    assert not PYTHON_ARGUMENT.search(result.output), PYTHON_ARGUMENT.search(result.output)
    undescribed = [
        param.opts[0]
        for param in _resolve(path).params
        if isinstance(param, click.Option) and not param.hidden and not param.help
    ]
    assert not undescribed


def test_help_writes_flags_for_python_arguments() -> None:
    assert "with --head mlm, the masked-LM head" in " ".join(run(["bert", "--help"]).output.split())


def test_sweep_and_solve_mark_the_sizes_they_need() -> None:
    sweep = " ".join(run(["sweep", "lstm", "--help"]).output.split())
    assert "out. [required]" in sweep
    solve = " ".join(run(["solve", "lstm", "--help"]).output.split())
    assert "[required, but the size --for names]" in solve


def test_solve_explains_its_step_and_prints_the_chosen_model() -> None:
    args = ["solve", "llama", "--params", "7B", "--vocab", "32000", "--layers", "32"]
    result = run([*args, "--heads", "32"], width=200)
    assert result.exit_code == 0
    assert (
        "Sizes tried in multiples of 64: hidden must be a multiple of twice the heads "
        "(an even head_dim, for rotary positions)." in result.output
    )
    last = result.output.strip().splitlines()[-1]
    assert last == (
        "The closest model: shapecalc llama --vocab 32000 --layers 32 --heads 32 --hidden 4160"
    )
    shown = run([*last.split()[4:], "--format", "json"])
    assert shown.exit_code == 0 and '"total": 6980018240' in shown.output


def test_solve_says_when_the_step_is_only_the_one_asked_for() -> None:
    args = ["solve", "lstm", "--params", "7M", "--vocab", "65", "--multiple-of", "64"]
    result = run(args, width=200)
    assert "Sizes tried in multiples of 64 (--multiple-of)." in result.output
    assert result.output.strip().endswith("shapecalc lstm --vocab 65 --hidden 896")


def test_more_kv_heads_than_heads_is_said_so() -> None:
    args = ["llama", "--vocab", "320", "--hidden", "64", "--layers", "1", "--heads", "32"]
    result = run([*args, "--kv-heads", "64"])
    assert result.exit_code == 2
    assert "kv_heads may not exceed heads: 64 > 32" in result.stderr
