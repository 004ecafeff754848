"""``shapecalc show FILE.py:NAME``: a composed model with every flag a model command has,
within 80 and 200 columns; a bad path or name is one line and exit 2. And what the
library gives after a plain ``import shapecalc``: the exports, the report's formats,
docs/howto/compose.md's own calls, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import shapecalc
from shapecalc.cli import cli
from tests.test_layout import ENV, check

ROOT = Path(__file__).resolve().parent.parent

NET = """
from shapecalc.architectures._vision import densenet, vit
from shapecalc import Block, Linear, Model, Parameter, ReLU, Sequential, chain, summed

model = vit(32, 8, 2, 4, 64, 128, num_classes=10)
own = {"pos": Parameter((1, 4)), "fc": Linear(4, 4)}
block = Block("Net", own, flow=chain(summed((), "pos"), "fc"))
spec = Linear(3, 5)

def make():
    return Model("tiny", Sequential(Linear(8, 16), ReLU(), Linear(16, 2)), input_layout=(("B", 8),))

number = 3
"""


@pytest.fixture
def net(tmp_path: Path) -> str:
    path = tmp_path / "net.py"
    path.write_text(NET)
    return str(path)


def run(args: list[str], width: int = 80) -> Result:
    return CliRunner().invoke(cli, args, env={**ENV, "COLUMNS": str(width)}, prog_name="shapecalc")


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--all"],
        ["--all", "--batch", "2", "--depth", "2"],
        ["--format", "tree", "--depth", "3", "--memory"],
        ["--flops", "--dtype", "bf16", "--training", "sgd"],
        ["--verify"],
    ],
)
def test_show_a_composed_model_with_a_model_commands_flags(
    net: str, width: int, flags: list[str]
) -> None:
    result = run(["show", f"{net}:model", *flags], width)
    check(result, width)
    assert "conv_proj.weight" in result.stdout or "conv_proj" in result.stdout
    if "--all" in flags:
        assert "FLOPs" in result.stdout and "Kept" in result.stdout


@pytest.mark.parametrize("fmt", ["json", "markdown", "latex"])
def test_show_every_text_format(net: str, fmt: str) -> None:
    result = run(["show", f"{net}:make", "--format", fmt, "--all", "--batch", "4"])
    assert result.exit_code == 0, result.output
    if fmt == "json":
        data = json.loads(result.stdout)
        assert data["model"]["name"] == "tiny" and data["total"] == 8 * 16 + 16 + 16 * 2 + 2


@pytest.mark.parametrize("name", ["make", "block", "spec"])
def test_show_takes_a_function_a_block_and_a_layer(net: str, name: str) -> None:
    result = run(["show", f"{net}:{name}"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("{net}:modle", "has no 'modle'; did you mean model?"),
        ("{net}:number", "is a int, not a shapecalc Model"),
        ("{dir}/nope.py:model", "no such file"),
        ("{dir}/bad.py:model", "raised ZeroDivisionError"),
        ("{net}", "write FILE.py:NAME"),
        ("no_such_module_xyz:model", "cannot import no_such_module_xyz"),
    ],
)
def test_bad_targets_are_one_line_and_exit_2(net: str, target: str, said: str) -> None:
    folder = Path(net).parent
    (folder / "bad.py").write_text("model = 1 / 0\n")
    result = run(["show", target.format(net=net, dir=folder)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and "Traceback" not in result.output


def test_inspect_of_a_model_names_show(net: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(net).parent))
    monkeypatch.chdir(Path(net).parent)
    result = run(["inspect", "net:model"])
    assert result.exit_code == 2 and "shapecalc show net:model" in result.output


# -- the library after a plain import ----------------------------------------------------------
def test_report_text_writes_every_format_the_docs_name() -> None:
    model = shapecalc.layer_model(shapecalc.Linear(4, 2))
    report = shapecalc.report.Report(model)
    for fmt in shapecalc.report.FORMATS:  # table, tree, json, markdown, latex
        assert "weight" in shapecalc.report.text(report, fmt)
    table = shapecalc.report.text(report, "table", width=80)
    assert max(len(line) for line in table.splitlines()) <= 80
    with pytest.raises(shapecalc.ShapecalcError, match="fmt must be one of"):
        shapecalc.report.text(report, "tabel")


def _fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}{':' + str(ROOT / 'tests' / 'zoo')}", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_star_import_takes_every_layer_kind() -> None:
    out = _fresh(
        """
        from shapecalc import *
        import shapecalc
        missing = [k for k in shapecalc.LAYER_KINDS if k not in globals()]
        assert not missing, missing
        for name in ("Cat", "Permute", "Parameter", "StochasticDepth", "LayerNorm2d", "Block"):
            assert name in globals(), name
        print(len(shapecalc.LAYER_KINDS))
        """
    )
    assert int(out) == len(shapecalc.LAYER_KINDS)


def test_compose_howto_calls_after_a_plain_import() -> None:
    """docs/howto/compose.md's own calls, with only ``import shapecalc`` (and its example
    file, tests/zoo/resnet.py, imported as the page imports it)."""
    out = _fresh(
        """
        import shapecalc
        from resnet import resnet  # the file above

        model = resnet(18)
        assert model.total == 11_689_512
        first = [("conv1.weight", (64, 3, 7, 7)), ("bn1.weight", (64,))]
        assert model.named_parameters()[:2] == first
        cost = shapecalc.analyze(model, batch=1)
        assert cost.layers[-1].outputs == ((1, 1000),)
        assert cost.macs == 1_814_073_344
        text = shapecalc.report.text(shapecalc.report.Report(model, depth=2), "markdown")
        assert "| layer1 | `layer1.0` |" in text
        print(shapecalc.report.text(shapecalc.report.Report(model, depth=2), "table", width=80))
        """
    )
    assert "11,689,512" in out


def test_a_size_the_input_layout_does_not_hold_is_refused(tmp_path: Path) -> None:
    """--batch on a model whose input layout is all numbers would change nothing: one
    line naming the flag; a layer with no input layout is told where to write one."""
    path = tmp_path / "fixed.py"
    path.write_text(
        "from shapecalc import Linear, Model, Sequential\n"
        "model = Model('tiny', Sequential(Linear(64, 10)), input_layout=((8, 64),))\n"
        "lin = Linear(16, 10)\n"
    )
    fixed = run(["show", f"{path}:model", "--flops", "--batch", "2"])
    assert fixed.exit_code == 2 and len(fixed.stderr.splitlines()) == 1
    assert "--batch" in fixed.stderr and "has no B" in fixed.stderr
    assert run(["show", f"{path}:model", "--flops"]).exit_code == 0
    bare = run(["show", f"{path}:lin", "--flops"])
    assert bare.exit_code == 2 and "input_layout" in bare.stderr
    assert "--input-shape" not in bare.stderr  # show has no such flag
