"""torchvision's classification models by name, against what torchvision itself built.

torchvision cannot be imported beside the CPU torch of this environment, so the truth is
tests/golden/torchvision_truth.json.gz, written by scripts/torchvision_truth.py in an
environment of its own (torch 2.14.1, torchvision 0.29.1, every model on the meta device):
every parameter's and buffer's name and shape, the totals, the output shape, and
FlopCounterMode's count (2 FLOPs per multiply-accumulate, as tests/test_zoo.py compares)
at 224 and at each pretrained weights' crop size, beside torchvision's published figures.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.cost import analyze
from shapecalc.architectures.vision import (
    TORCHVISION_MODELS,
    WIDTH_MULT,
    names,
    torchvision,
)
from shapecalc.cli import cli
from shapecalc.core.errors import InvalidArgumentError

ROOT = Path(__file__).resolve().parent.parent
TRUTH = ROOT / "tests" / "golden" / "torchvision_truth.json.gz"


@functools.lru_cache(maxsize=1)
def truth() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress(TRUTH.read_bytes()))
    return data


#: whether a pretrained weights' builder keeps the auxiliary heads unless asked
#: (googlenet.py: ``kwargs.get("aux_logits", False)``; inception.py: ``..., True)``)
PRETRAINED_AUX = {"googlenet": False, "inception_v3": True}


@functools.cache
def model(name: str, num_classes: int = 1000, image_size: int = 224) -> Any:
    return torchvision(name, num_classes=num_classes, image_size=image_size)


def _same(ours: Any, theirs: list[Any]) -> None:
    assert [n for n, _ in ours] == [t[0] for t in theirs]
    assert [tuple(s) for _, s in ours] == [tuple(t[1]) for t in theirs]


def test_the_truth_names_every_torchvision_model() -> None:
    listed = sorted({key.split(":")[0] for key in truth()["models"]})
    assert listed == sorted(TORCHVISION_MODELS)
    assert (truth()["torch"], truth()["torchvision"]) == ("2.14.1", "0.29.1")


def test_the_families_built() -> None:
    built = names()
    for prefix in ("resnet", "resnext", "wide_resnet", "vgg", "mobilenet", "efficientnet"):
        assert [n for n in TORCHVISION_MODELS if n.startswith(prefix)] == [
            n for n in built if n.startswith(prefix)
        ]
    assert [n for n in TORCHVISION_MODELS if n.startswith("regnet")] == [
        n for n in built if n.startswith("regnet")
    ]
    for prefix in ("vit_", "convnext_", "densenet", "swin_"):
        assert [n for n in TORCHVISION_MODELS if n.startswith(prefix)] == [
            n for n in built if n.startswith(prefix)
        ]
    for prefix in ("alexnet", "squeezenet", "googlenet", "inception", "mnasnet", "shufflenet"):
        assert [n for n in TORCHVISION_MODELS if n.startswith(prefix)] == [
            n for n in built if n.startswith(prefix)
        ]
    assert sorted(set(TORCHVISION_MODELS) - set(built)) == ["maxvit_t"]


@pytest.mark.parametrize("name", names())
def test_names_shapes_buffers_totals_and_flops(name: str) -> None:
    expected = truth()["models"][name]
    ours = model(name)
    _same(ours.named_parameters(), expected["parameters"])
    _same(ours.named_buffers(), expected["buffers"])
    assert ours.total == expected["total"]
    cost = analyze(ours, batch=1)
    assert cost.layers[-1].outputs == (tuple(expected["output"]),)
    assert 2 * cost.macs == expected["flops"]


@pytest.mark.parametrize(
    "key", sorted(k for k in truth()["models"] if ":" in k and k.split(":")[0] in names())
)
def test_num_classes_and_width_mult(key: str) -> None:
    expected = truth()["models"][key]
    ours = torchvision(key.split(":")[0], **expected["kwargs"])
    _same(ours.named_parameters(), expected["parameters"])
    _same(ours.named_buffers(), expected["buffers"])
    assert ours.total == expected["total"]
    assert 2 * analyze(ours, batch=1).macs == expected["flops"]


def _published() -> list[tuple[str, int]]:
    return [
        (name, i) for name in names() for i, _ in enumerate(truth()["models"][name]["published"])
    ]


@pytest.mark.parametrize(("name", "index"), _published())
def test_published_weights_at_their_crop_size(name: str, index: int) -> None:
    """Each pretrained weights entry: torchvision's num_params, and FlopCounterMode at the
    weights' crop size (EfficientNet-B7 at 600, RegNet's SWAG weights at 384)."""
    entry = truth()["models"][name]["published"][index]
    classes = entry["built_with"]["num_classes"]
    ours = model(name, classes, entry["crop_size"])
    assert ours.total == entry["total"]
    if name in PRETRAINED_AUX:  # the weights' builder keeps or drops the auxiliary heads
        kept = torchvision(name, num_classes=classes, aux_logits=PRETRAINED_AUX[name])
        assert kept.total == entry["num_params"]
    else:
        assert ours.total == entry["num_params"]
    assert 2 * analyze(ours, batch=1).macs == entry["flops"]
    # torchvision's _ops is GFLOPS as it counts them: multiply-accumulates, rounded
    assert round(analyze(ours, batch=1).macs / 1e9, 3) == pytest.approx(entry["ops"], abs=2e-3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "resnet5"}, "name"),
        ({"name": "maxvit_t"}, "name"),
        ({"name": "vit_b_16", "image_size": 225}, "image_size"),
        ({"name": "vit_h_14", "image_size": 7}, "image_size"),
        ({"name": "resnet50", "num_classes": 0}, "num_classes"),
        ({"name": "resnet50", "image_size": "224"}, "image_size"),
        ({"name": "vgg16", "image_size": 31}, "image_size"),
        ({"name": "resnet50", "width_mult": 0.5}, "width_mult"),
        ({"name": "mobilenet_v2", "width_mult": 0}, "width_mult"),
        ({"name": "resnet50", "aux_logits": False}, "aux_logits"),
        ({"name": "googlenet", "aux_logits": 1}, "aux_logits"),
    ],
)
def test_refused(kwargs: dict[str, Any], field: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(InvalidArgumentError) as caught:
        torchvision(name, **kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize("name", ["vit_b_16", "convnext_tiny", "densenet121", "swin_t"])
def test_num_classes_changes_the_head_only(name: str) -> None:
    """The truth holds these at 1000 classes: with 10, every name and every other shape is
    torchvision's, the last weight (10, D) and bias (10,)."""
    expected = truth()["models"][name]["parameters"]
    ours = model(name, 10).named_parameters()
    assert [n for n, _ in ours] == [t[0] for t in expected]
    assert [tuple(s) for _, s in ours[:-2]] == [tuple(t[1]) for t in expected[:-2]]
    assert [s for _, s in ours[-2:]] == [(10, expected[-2][1][1]), (10,)]
    assert analyze(model(name, 10), batch=1).layers[-1].outputs == ((1, 10),)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(["vit_b_32", "vit_h_14"]), size=st.integers(1, 600))
def test_vit_positions_follow_the_image_size(name: str, size: int) -> None:
    """vision_transformer.py: ``image_size % patch_size == 0`` is asserted, and
    ``encoder.pos_embedding`` is (1, (image_size // patch_size)² + 1, hidden_dim)."""
    patch = {"vit_b_32": 32, "vit_h_14": 14}[name]
    try:
        ours = torchvision(name, image_size=size)
    except InvalidArgumentError as err:
        assert size % patch
        assert err.field == "image_size"
        assert f"patch size {patch}" in str(err)
        return
    assert size % patch == 0
    shapes = dict(ours.named_parameters())
    hidden = shapes["class_token"][-1]
    assert shapes["encoder.pos_embedding"] == (1, (size // patch) ** 2 + 1, hidden)
    assert analyze(ours, batch=1).layers[-1].outputs == ((1, 1000),)


def test_the_smallest_images_resnet_takes() -> None:
    assert analyze(torchvision("resnet18", image_size=1), batch=1).layers[-1].outputs == (
        (1, 1000),
    )


# -- the command ---------------------------------------------------------------------------
def run(args: list[str], width: int = 80) -> Any:
    env = {"COLUMNS": str(width), "FORCE_COLOR": None, "NO_COLOR": None, "TTY_COMPATIBLE": None}
    return CliRunner().invoke(cli, ["torchvision", *args], env=env, prog_name="shapecalc")


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize(
    "args",
    [
        "resnet50",
        "mobilenet_v3_small --num-classes 10 --all --batch 8",
        "efficientnet_b0 --depth 2 --flops",
        "regnet_y_400mf --format tree --depth 3",
        "vit_b_32 --image-size 384 --all",
        "convnext_tiny --depth 3 --flops",
        "densenet121 --format tree --depth 2",
        "swin_t --num-classes 10 --all --depth 3",
    ],
)
def test_the_command_fits(args: str, width: int) -> None:
    from tests.test_layout import check

    check(run(shlex.split(args), width), width)


def test_the_command_json_and_list() -> None:
    result = run(["resnet18", "--format", "json", "--flops", "--batch", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["total"] == truth()["models"]["resnet18"]["total"]
    assert report["model"]["arguments"] == {
        "name": "resnet18",
        "num_classes": 1000,
        "image_size": 224,
    }
    assert 2 * report["cost"]["macs"] == truth()["models"]["resnet18"]["flops"]
    from tests.test_schema import REPORT

    REPORT.validate(report)
    listed = run(["--list"])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == names()
    assert all(
        ("--width-mult" in line) == (line.split()[0] in WIDTH_MULT)
        for line in listed.stdout.splitlines()
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["resnet5"], "did you mean resnet50"),
        (["vgg16", "--image-size", "31"], "'--image-size'"),
        (["resnet18", "--width-mult", "2"], "'--width-mult'"),
        (["maxvit_t"], "not built by shapecalc yet"),
        (["vit_b_16", "--image-size", "225"], "'--image-size'"),
        ([], "Missing argument 'NAME'"),
    ],
)
def test_the_command_refuses_in_one_line(args: list[str], says: str) -> None:
    result = run(args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert says in result.stderr


def test_the_truth_file_is_what_the_script_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "truth", ROOT / "scripts" / "torchvision_truth.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "truth.json.gz"
    script.write(truth(), out)
    assert out.read_bytes() == TRUTH.read_bytes()


# -- StochasticDepth, and what autograd keeps --------------------------------------------------
def test_stochastic_depth() -> None:
    """torchvision/ops/stochastic_depth.py (0.29.1) lines 28-44: p in [0, 1], mode "batch"
    or "row"; the identity at inference; in training input * noise, the noise (B, 1, ...)
    for "row" and (1, ...) for "batch"."""
    from shapecalc.layers.vision import StochasticDepth

    work = StochasticDepth(0.2, "row").work((8, 64, 7, 7))
    assert work.outputs == ((8, 64, 7, 7),)
    assert [s.shape for s in work.saved] == [(8, 1, 1, 1)]
    assert [s.shape for s in StochasticDepth(0.5, "batch").work((8, 64)).saved] == [(1, 1)]
    assert StochasticDepth(0.0, "row").work((8, 64)).saved == ()
    assert StochasticDepth(0.2, "row").stateless()
    for field, kwargs in (("p", {"p": 1.5, "mode": "row"}), ("mode", {"p": 0.1, "mode": "col"})):
        with pytest.raises(InvalidArgumentError) as caught:
            StochasticDepth(**kwargs)
        assert caught.value.field == field


@pytest.mark.parametrize(
    "name", ["mobilenet_v3_small", "efficientnet_b0", "mnasnet0_5", "shufflenet_v2_x0_5"]
)
def test_activation_memory_against_autograd(name: str) -> None:
    """Squeeze-and-excitation, Hardsigmoid, in-place Hardswish and SiLU, stochastic depth:
    the bytes autograd keeps for a training forward of the built module equal shapecalc's."""
    torch = pytest.importorskip("torch")
    import shapecalc
    from tests.measure import kept_bytes

    ours = torchvision(name, image_size=32)
    module = shapecalc.build(ours, device="cpu")
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: threads only wait on each other
    try:
        kept = kept_bytes(module, [torch.randn(2, 3, 32, 32)])
    finally:
        torch.set_num_threads(threads)
    assert kept == analyze(ours, ((2, 3, 32, 32),)).activation_bytes
    module.eval()
    with torch.no_grad():
        assert tuple(module(torch.randn(2, 3, 32, 32)).shape) == (2, 1000)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(
        [
            *("resnet18", "vgg11", "mobilenet_v3_small", "regnet_x_400mf"),
            *("convnext_tiny", "densenet121", "swin_t"),
        ]
    ),
    size=st.integers(1, 300),
)
def test_any_image_size_is_taken_or_refused_by_name(name: str, size: int) -> None:
    """Every size either gives one (1, 1000) row of scores or is refused as --image-size,
    naming the layer that cannot take it."""
    try:
        ours = torchvision(name, image_size=size)
    except InvalidArgumentError as err:
        assert err.field == "image_size"
        assert "cannot take" in str(err)
        return
    assert analyze(ours, batch=1).layers[-1].outputs == ((1, 1000),)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("alexnet", 63),
        ("squeezenet1_0", 64),
        ("squeezenet1_1", 48),
        ("googlenet", 64),
        ("inception_v3", 75),
    ],
)
def test_the_classics_build_and_count_as_torch_does(name: str, size: int) -> None:
    """AlexNet, SqueezeNet, GoogLeNet and Inception v3 built with torch: the module's
    names and shapes are the tree's, FlopCounterMode's count of its evaluation forward
    (auxiliary heads idle) equals shapecalc's, and the output is (1, 1000)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    import shapecalc

    ours = torchvision(name, image_size=size)
    module = shapecalc.build(ours, device="cpu").eval()
    assert [(n, tuple(p.shape)) for n, p in module.named_parameters()] == [
        (n, tuple(s)) for n, s in ours.named_parameters()
    ]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = module(torch.randn(1, 3, size, size))
    assert tuple(out.shape) == (1, 1000)
    assert counter.get_total_flops() == 2 * analyze(ours, batch=1).macs
