"""``inspect`` at its edges, against torch: one module used at several places (listed and
counted once, as ``named_parameters()`` does), lazy modules given their shapes by
``--input-shape``, and parameters and buffers counted apart, for a module and for the
same network saved as a state dict and as safetensors."""

from __future__ import annotations

import importlib
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.checkpoint import BUFFER_NAMES, is_buffer_name, read_checkpoint
from shapecalc.adapters.torch_bridge import (
    LazyModuleError,
    ModuleModel,
    from_module,
    materialize,
)
from shapecalc.core.errors import InvalidArgumentError
from tests.test_cli import run
from tests.test_schema import validator

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
nn = torch.nn

#: a fresh name for each user module written to disk (imports are cached by name)
_NAMES = itertools.count()


def torch_view(module: Any) -> tuple[Any, ...]:
    """What torch says: parameter names and shapes, buffers, and the two totals."""
    return (
        [(n, tuple(p.shape)) for n, p in module.named_parameters()],
        [(n, tuple(b.shape)) for n, b in module.named_buffers()],
        sum(p.numel() for p in module.parameters()),
        sum(b.numel() for b in module.buffers()),
    )


def shapecalc_view(model: ModuleModel) -> tuple[Any, ...]:
    buffers = model.named_buffers()
    count = 0
    for _, shape in buffers:
        n = 1
        for d in shape:
            assert isinstance(d, int)
            n *= d
        count += n
    return (model.named_parameters(), buffers, model.total, count)


def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    """``body`` written as a module in the current directory; its importable name."""
    name = f"edge_models_{next(_NAMES)}"
    (tmp_path / f"{name}.py").write_text("import torch\nimport torch.nn as nn\n" + body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # for the test's own import too
    return name


def one_error_line(result: Any, flag: str, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: Invalid value for '{flag}': "), lines
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


# -- one module at several places ---------------------------------------------------------
def top_level() -> Any:
    lin = nn.Linear(4, 4)
    return nn.Sequential(lin, nn.ReLU(), lin)


def nested() -> Any:
    lin = nn.Linear(4, 4)
    return nn.Sequential(nn.Sequential(lin, nn.ReLU()), nn.Sequential(nn.Linear(4, 4), lin))


def three_times() -> Any:
    lin = nn.Linear(3, 3)
    return nn.Sequential(lin, nn.Tanh(), lin, nn.Tanh(), lin)


def reuse_linear() -> Any:
    """torchinfo's ReuseLinear fixture: one Linear at four places."""

    class ReuseLinear(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            linear = nn.Linear(10, 10)
            model: list[Any] = []
            for _ in range(4):
                model += [linear, nn.ReLU(True)]
            self.model = nn.Sequential(*model)

        def forward(self, x: Any) -> Any:
            return self.model(x)

    return ReuseLinear()


def shared_block() -> Any:
    """A shared module with children of its own (and buffers), used three times."""
    block = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3))
    return nn.Sequential(block, nn.ReLU(), nn.Sequential(block, nn.Conv2d(3, 2, 1)), block)


def shared_parameter() -> Any:
    """One nn.Parameter in two modules (a tie): its second name is tied to the first."""
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    return nn.Sequential(a, nn.ReLU(), b)


REUSED: list[tuple[Callable[[], Any], dict[str, tuple[str, ...]], dict[str, str]]] = [
    (top_level, {"0": ("2",)}, {}),
    (nested, {"0.0": ("1.1",)}, {}),
    (three_times, {"0": ("2", "4")}, {}),
    (reuse_linear, {"model.0": ("model.2", "model.4", "model.6")}, {}),
    (shared_block, {"0": ("2.0", "3")}, {}),
    (shared_parameter, {}, {"2.weight": "0.weight"}),
]


@pytest.mark.parametrize(
    ("make", "reused", "ties"), REUSED, ids=lambda v: getattr(v, "__name__", "")
)
def test_a_module_used_twice_is_listed_and_counted_once(
    make: Callable[[], Any], reused: dict[str, tuple[str, ...]], ties: dict[str, str]
) -> None:
    module = make()
    model = from_module(module)
    assert shapecalc_view(model) == torch_view(module)
    assert dict(model.reused) == reused
    assert dict(model.ties) == ties
    assert sum(r.counted for r in model.rows()) == model.total
    for path, others in reused.items():
        assert any(f"{path} (" in note and others[-1] in note for note in model.notes)


def test_reuse_in_the_cli_as_text_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = user_module(
        tmp_path,
        monkeypatch,
        "lin = nn.Linear(4, 4)\n"
        "net = nn.Sequential(lin, nn.ReLU(), lin)\n"
        "block = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))\n"
        "deep = nn.Sequential(block, nn.Sequential(block, nn.Linear(2, 3)))\n",
    )
    text = run(["inspect", f"{name}:net"], 120)
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[0] == f"{name}:net  20 parameters (20)"
    assert "0  20 (100.0%)  Linear  also used as 2" in text.stdout
    assert "Note: 0 (Linear) is also used as 2" in text.stdout
    report = json.loads(run(["inspect", f"{name}:net", "--format", "json"]).stdout)
    validator("inspect").validate(report)
    assert report["total"] == 20
    assert [t["name"] for t in report["tensors"]] == ["0.weight", "0.bias"]
    assert report["reused"] == [{"module": "0", "also_used_as": ["2"]}]
    deep = json.loads(run(["inspect", f"{name}:deep", "--format", "json"]).stdout)
    validator("inspect").validate(deep)
    module = importlib.import_module(name).deep
    names, buffers, total, buffer_total = torch_view(module)
    assert [t["name"] for t in deep["tensors"] if not t["buffer"]] == [n for n, _ in names]
    assert [t["name"] for t in deep["tensors"] if t["buffer"]] == [n for n, _ in buffers]
    assert (deep["total"], deep["buffer_total"]) == (total, buffer_total)
    assert deep["reused"] == [{"module": "0", "also_used_as": ["1.0"]}]
    tree = run(["inspect", f"{name}:deep", "--depth", "1"], 120).stdout
    assert f"0  {6 + 4} (" in tree and "also used as 1.0" in tree


def test_a_shared_parameter_in_the_cli_is_a_tie(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = user_module(
        tmp_path,
        monkeypatch,
        "a, b = nn.Linear(4, 4), nn.Linear(4, 4)\nb.weight = a.weight\nnet = nn.Sequential(a, b)\n",
    )
    module = importlib.import_module(name).net
    report = json.loads(run(["inspect", f"{name}:net", "--format", "json"]).stdout)
    validator("inspect").validate(report)
    counted = [(t["name"], tuple(t["shape"])) for t in report["tensors"] if not t["tied_to"]]
    assert counted == torch_view(module)[0]
    assert report["total"] == torch_view(module)[2] == 24
    assert [t["tied_to"] for t in report["tensors"] if t["tied_to"]] == ["0.weight"]
    text = run(["inspect", f"{name}:net"], 120).stdout
    assert "weight  (4, 4)  tied to 0.weight, counted there" in text


@st.composite
def trees_with_reuse(draw: st.DrawFn) -> Any:
    """A random tree of Sequentials over Linear, BatchNorm1d and ReLU layers (meta device)
    in which some places hold a module (a layer or a whole sub-tree) met before."""
    made: list[Any] = []

    def layer() -> Any:
        if made and draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(made))  # one met before, at a new place
        kind = draw(st.sampled_from(["linear", "norm", "relu"]))
        size = draw(st.integers(1, 4))
        if kind == "linear":
            new = nn.Linear(size, draw(st.integers(1, 4)), bias=draw(st.booleans()), device="meta")
        elif kind == "norm":
            new = nn.BatchNorm1d(size, device="meta")
        else:
            new = nn.ReLU()
        made.append(new)
        return new

    def tree(depth: int) -> Any:
        children = [
            tree(depth - 1) if depth and draw(st.booleans()) else layer()
            for _ in range(draw(st.integers(1, 3)))
        ]
        new = nn.Sequential(*children)
        made.append(new)
        return new

    return tree(2)


@settings(max_examples=60, deadline=None)
@given(module=trees_with_reuse())
def test_any_tree_with_reused_modules_agrees_with_torch(module: Any) -> None:
    model = from_module(module)
    assert shapecalc_view(model) == torch_view(module)
    everywhere = [n for n, _ in module.named_modules(remove_duplicate=False)]
    for path, others in model.reused.items():
        shared = module.get_submodule(path)
        assert all(module.get_submodule(p) is shared for p in others)
        assert set(others) <= set(everywhere)


# -- lazy modules ---------------------------------------------------------------------------
LAZY = (
    "def linear():\n"
    "    return nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(3))\n"
    "def conv():\n"
    "    return nn.Sequential(nn.LazyConv2d(6, 3), nn.LazyBatchNorm2d(), nn.ReLU(),\n"
    "                         nn.Flatten(), nn.LazyLinear(4))\n"
    "def tokens():\n"
    "    return nn.Sequential(nn.Embedding(10, 4), nn.LazyLinear(2))\n"
)


@pytest.mark.parametrize(
    ("attr", "shape"),
    [("linear", (2, 5)), ("conv", (1, 3, 10, 10)), ("conv", (2, 3, 7, 9)), ("tokens", (2, 6))],
)
def test_input_shape_gives_lazy_modules_their_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attr: str, shape: tuple[int, ...]
) -> None:
    name = user_module(tmp_path, monkeypatch, LAZY)
    real = getattr(importlib.import_module(name), attr)()
    dtype = torch.long if attr == "tokens" else torch.float32
    real(torch.zeros(shape, dtype=dtype))  # a real forward, on the CPU
    names, buffers, total, buffer_total = torch_view(real)
    flag = ",".join(map(str, shape))
    report = json.loads(
        run(["inspect", f"{name}:{attr}", "--input-shape", flag, "--format", "json"]).stdout
    )
    validator("inspect").validate(report)
    assert [(t["name"], tuple(t["shape"])) for t in report["tensors"] if not t["buffer"]] == names
    assert [(t["name"], tuple(t["shape"])) for t in report["tensors"] if t["buffer"]] == buffers
    assert (report["total"], report["buffer_total"]) == (total, buffer_total)
    text = run(["inspect", f"{name}:{attr}", "--input-shape", flag], 120)
    assert text.exit_code == 0, text.output
    assert f"{total:,} parameters" in text.stdout.splitlines()[0]
    assert "Note: Lazy shapes from one forward" in text.stdout
    # the library, the same
    module = getattr(importlib.import_module(name), attr)()
    model = from_module(module, input_shapes=[shape])
    assert shapecalc_view(model) == torch_view(real)
    assert any(  # the module given is left as it was
        isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()
    )


def test_a_lazy_module_without_input_shape_says_to_pass_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = user_module(tmp_path, monkeypatch, LAZY)
    for fmt in ("table", "json"):
        result = run(["inspect", f"{name}:conv", "--format", fmt])
        one_error_line(
            result, "TARGET", "0.weight (LazyConv2d) is not initialized", "--input-shape"
        )
    with pytest.raises(LazyModuleError, match="give input_shapes") as caught:
        from_module(nn.Sequential(nn.ReLU(), nn.LazyLinear(3)))
    assert (caught.value.tensor, caught.value.kind) == ("1.weight", "LazyLinear")


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ("2,x", "'2,x': an input shape is integers from 1 to 2^40"),
        ("0,5", "'0,5'"),
        ("", "''"),
        ("2,,5", "'2,,5'"),
        ("-1,5", "'-1,5'"),
        ("99999999999999,5", "'99999999999999,5'"),
        ("2,4", "mat1 and mat2 shapes cannot be multiplied"),  # the forward refuses it
        ("1048576,1048576,1048576,16", "more numbers than a tensor can"),
    ],
)
def test_bad_input_shapes_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str, words: str
) -> None:
    name = user_module(
        tmp_path, monkeypatch, "net = nn.Sequential(nn.Linear(5, 3), nn.LazyLinear(2))\n"
    )
    one_error_line(run(["inspect", f"{name}:net", "--input-shape", shape]), "--input-shape", words)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.one_of(
        st.lists(st.integers(-2, 40), min_size=1, max_size=4).map(lambda v: ",".join(map(str, v))),
        st.text(alphabet="0123456789,()[] x-+.e", max_size=12),
        st.text(max_size=8),
    )
)
def test_any_input_shape_is_a_listing_or_one_line(shape: str) -> None:
    result = run(["inspect", "torch.nn:LazyBatchNorm1d", "--input-shape", shape])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), lines


def test_input_shape_is_for_module_targets_only(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    safetensors_torch.save_file({"w": torch.zeros(2)}, str(path))
    one_error_line(
        run(["inspect", str(path), "--input-shape", "2,3"]), "--input-shape", "no package.module"
    )
    one_error_line(run(["inspect", "nothing", "--input-shape", "2,3"]), "--input-shape")


def test_a_forward_that_misses_a_lazy_module_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = user_module(
        tmp_path,
        monkeypatch,
        "class Two(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.used = nn.LazyLinear(3)\n"
        "        self.unused = nn.LazyLinear(3)\n"
        "    def forward(self, x):\n"
        "        return self.used(x)\n",
    )
    one_error_line(
        run(["inspect", f"{name}:Two", "--input-shape", "2,5"]),
        "--input-shape",
        "unused.weight (LazyLinear) is still not initialized",
    )


def test_materialize_falls_back_to_the_cpu_and_checks_its_arguments() -> None:
    class NeedsValues(nn.Module):  # type: ignore[misc]
        """A forward that reads a value: impossible on the meta device."""

        def __init__(self) -> None:
            super().__init__()
            self.head = nn.LazyLinear(2)
            self.norm = nn.LazyBatchNorm1d()  # lazy buffers too, which torch cannot copy

        def forward(self, x: Any) -> Any:
            return self.norm(self.head(x)) * (1 + int(x.sum().item()))

    copied = materialize(NeedsValues(), [(3, 7)])
    assert tuple(copied.head.weight.shape) == (2, 7)
    assert tuple(copied.norm.running_mean.shape) == (2,)
    assert copied.head.weight.device.type == "cpu"
    meta = materialize(nn.Sequential(nn.LazyLinear(2)), ((3, 7),))
    assert meta[0].weight.device.type == "meta"  # no memory for the weights
    for bad in ["2,3", [], [(2, 0)], [(2.0, 3)], [(True, 3)], [[2, "x"]]]:
        with pytest.raises(InvalidArgumentError) as caught:
            materialize(nn.LazyLinear(2), bad)
        assert caught.value.field == "input_shapes"


# -- parameters and buffers apart -----------------------------------------------------------
NETWORK = (
    "def net():\n"
    "    torch.manual_seed(0)\n"
    "    return nn.Sequential(\n"
    "        nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(),\n"
    "        nn.Sequential(nn.Conv2d(16, 32, 3, bias=False), nn.BatchNorm2d(32)),\n"
    "        nn.InstanceNorm2d(32, affine=True, track_running_stats=True),\n"
    "        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10), nn.BatchNorm1d(10),\n"
    "    )\n"
)


def test_a_checkpoint_counts_parameters_and_buffers_as_the_module_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = user_module(tmp_path, monkeypatch, NETWORK)
    module = importlib.import_module(name).net()
    torch.save(module.state_dict(), tmp_path / "net.pt")
    safetensors_torch.save_file(dict(module.state_dict()), str(tmp_path / "net.safetensors"))
    _, _, total, buffer_total = torch_view(module)
    assert buffer_total > 0
    reports = {}
    for target in (f"{name}:net", "net.pt", "net.safetensors"):
        report = json.loads(run(["inspect", target, "--format", "json"]).stdout)
        validator("inspect").validate(report)
        assert (report["total"], report["buffer_total"]) == (total, buffer_total), target
        stored = {t["name"]: t["buffer"] for t in report["tensors"]}
        assert stored == {n: n in dict(module.named_buffers()) for n in module.state_dict()}
        reports[target] = report
        text = run(["inspect", target], 140).stdout
        assert f"  {total:,} parameters (" in text.splitlines()[0]
        assert f" + {buffer_total:,} in buffers" in text.splitlines()[0]
        said = "told apart by name" in text
        assert said == (target != f"{name}:net"), target
    assert reports[f"{name}:net"]["buffers_by"] == "module"
    assert reports["net.pt"]["buffers_by"] == reports["net.safetensors"]["buffers_by"] == "name"
    assert "told apart by name" in " ".join(reports["net.pt"]["notes"])
    checkpoint = read_checkpoint(str(tmp_path / "net.pt"))
    assert (checkpoint.parameter_total, checkpoint.buffer_total) == (total, buffer_total)
    assert checkpoint.total == total + buffer_total  # every number stored


def test_a_node_of_the_tree_counts_its_buffers_apart(tmp_path: Path) -> None:
    path = tmp_path / "bn.safetensors"
    bn = nn.BatchNorm1d(4)
    safetensors_torch.save_file({f"block.{k}": v for k, v in bn.state_dict().items()}, str(path))
    # wide enough for the temporary path's title and the note, each on one line
    text = run(["inspect", str(path), "--depth", "2"], 250).stdout.splitlines()
    assert text[0].startswith(f"{path}  8 parameters (8) + 9 in buffers · ")
    assert text[1] == "└── block  8 (100.0%) + 9 in buffers"
    # safetensors keeps its names sorted: num_batches_tracked first, weight last
    assert text[2:] == [
        "    ├── num_batches_tracked  ()  1  buffer  int64",
        "    ├── bias  (4,)  4 (50.0%)  float32",
        "    ├── running_mean  (4,)  4  buffer  float32",
        "    ├── running_var  (4,)  4  buffer  float32",
        "    └── weight  (4,)  4 (50.0%)  float32",
        "",
        "Note: Buffers are told apart by name (_random_samples, num_batches_tracked, "
        "pos_weight, running_mean, running_var): a checkpoint does not record which tensors "
        "are parameters",
    ]
    cut = run(["inspect", str(path), "--depth", "1"], 250).stdout.splitlines()
    assert cut[1] == "└── block  8 (100.0%) + 9 in buffers"


def test_a_checkpoint_without_buffers_says_nothing_of_them(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    safetensors_torch.save_file({"w": torch.zeros(2, 3), "running": torch.zeros(4)}, str(path))
    text = run(["inspect", str(path)], 120).stdout
    assert "buffer" not in text and "10 parameters" in text
    report = json.loads(run(["inspect", str(path), "--format", "json"]).stdout)
    assert (report["total"], report["buffer_total"]) == (10, 0) and "notes" not in report


def test_buffer_names_are_torch_nn_s_own() -> None:
    """Every buffer torch.nn's modules register by a literal name is one of ours, but
    the loss classes' ``weight`` (a parameter everywhere else)."""
    folder = Path(torch.__file__).parent / "nn" / "modules"
    registered = {
        m.group(1)
        for path in folder.glob("*.py")
        for m in re.finditer(r'register_buffer\(\s*"(\w+)"', path.read_text(encoding="utf-8"))
    }
    assert registered - {"weight"} <= BUFFER_NAMES, registered - BUFFER_NAMES
    assert {"running_mean", "running_var", "num_batches_tracked"} <= registered
    assert is_buffer_name("layer1.0.bn1.running_var") and is_buffer_name("num_batches_tracked")
    assert not is_buffer_name("bn.weight") and not is_buffer_name("running_mean.scale")
    assert not is_buffer_name("my_running_mean")
