"""The Hugging Face vision types (``vit``, ``dinov2``, ``convnext``, ``resnet``): published
configs counted as transformers' classes build them, FLOPs at the config's image size
against FlopCounterMode on a real forward of drawn tiny configs, the checkpoint files
``save_pretrained`` writes checked by ``inspect FOLDER``, and bad input as one line.

(Names and shapes of drawn configs against the classes on the meta device:
tests/test_hf.py and tests/test_architectures.py, with the twins of tests/twins_vision.py.)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_checkpoint import check_folder
from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from tests.hf_configs import hf_configs
from tests.test_cli import run
from tests.test_hf import expanded
from tests.twins import hf

torch = pytest.importorskip("torch")
t = hf()
flop_counter = pytest.importorskip("torch.utils.flop_counter")

TYPES = ("vit", "dinov2", "convnext", "resnet")
LABELS = {str(i): f"class {i}" for i in range(1000)}

#: the published configs, written from transformers' config classes and model docs
PUBLISHED: dict[str, tuple[dict[str, Any], int]] = {
    "google/vit-base-patch16-224": (
        {
            "model_type": "vit",
            "architectures": ["ViTForImageClassification"],
            "attention_probs_dropout_prob": 0.0,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0,
            "hidden_size": 768,
            "image_size": 224,
            "initializer_range": 0.02,
            "intermediate_size": 3072,
            "layer_norm_eps": 1e-12,
            "num_attention_heads": 12,
            "num_channels": 3,
            "num_hidden_layers": 12,
            "patch_size": 16,
            "qkv_bias": True,
            "encoder_stride": 16,
            "id2label": LABELS,
        },
        86_567_656,
    ),
    "facebook/dinov2-small": (
        {
            "model_type": "dinov2",
            "architectures": ["Dinov2Model"],
            "attention_probs_dropout_prob": 0.0,
            "drop_path_rate": 0.0,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0,
            "hidden_size": 384,
            "image_size": 518,
            "initializer_range": 0.02,
            "layer_norm_eps": 1e-06,
            "layerscale_value": 1.0,
            "mlp_ratio": 4,
            "num_attention_heads": 6,
            "num_channels": 3,
            "num_hidden_layers": 12,
            "patch_size": 14,
            "qkv_bias": True,
            "use_swiglu_ffn": False,
        },
        22_056_576,
    ),
    "facebook/dinov2-base": (
        {
            "model_type": "dinov2",
            "architectures": ["Dinov2Model"],
            "hidden_size": 768,
            "image_size": 518,
            "layerscale_value": 1.0,
            "mlp_ratio": 4,
            "num_attention_heads": 12,
            "num_hidden_layers": 12,
            "patch_size": 14,
            "use_swiglu_ffn": False,
        },
        86_580_480,
    ),
    "facebook/convnext-tiny-224": (
        {
            "model_type": "convnext",
            "architectures": ["ConvNextForImageClassification"],
            "depths": [3, 3, 9, 3],
            "drop_path_rate": 0.0,
            "hidden_act": "gelu",
            "hidden_sizes": [96, 192, 384, 768],
            "image_size": 224,
            "initializer_range": 0.02,
            "layer_norm_eps": 1e-12,
            "layer_scale_init_value": 1e-06,
            "num_channels": 3,
            "num_stages": 4,
            "patch_size": 4,
            "id2label": LABELS,
        },
        28_589_128,
    ),
    "microsoft/resnet-50": (
        {
            "model_type": "resnet",
            "architectures": ["ResNetForImageClassification"],
            "depths": [3, 4, 6, 3],
            "downsample_in_first_stage": False,
            "embedding_size": 64,
            "hidden_act": "relu",
            "hidden_sizes": [256, 512, 1024, 2048],
            "layer_type": "bottleneck",
            "num_channels": 3,
            "id2label": LABELS,
        },
        25_557_032,
    ),
}


def built(config: dict[str, Any], class_name: str, device: str = "meta") -> Any:
    """transformers' class of the config, on ``device``."""
    made = t.AutoConfig.for_model(**config)
    with torch.device(device), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(t, class_name)(made)


def tensors(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


@pytest.mark.parametrize("repo", sorted(PUBLISHED))
def test_published_configs_are_the_classes(repo: str) -> None:
    config, total = PUBLISHED[repo]
    found = hf_model(config)
    model = found.model()
    theirs = built(config, found.class_name)
    assert model.named_parameters() == tensors(theirs)
    assert model.total == sum(p.numel() for p in theirs.parameters()) == total
    buffers = [(n, tuple(b.shape)) for n, b in theirs.named_buffers()]
    assert sorted(_expanded(model)) == sorted(buffers)  # a run of layers one by one


def _expanded(model: Any) -> list[tuple[str, tuple[int, ...]]]:
    """The model's buffers, a run of layers (``layers.{1..5}``) one by one."""
    return [(n, tuple(p.shape)) for name, p in model.buffer_rows() for n in expanded(name)]


# -- FLOPs at the config's image size, on a real forward --------------------------------
@pytest.mark.parametrize("model_type", TYPES)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_flops_equal_flop_counter_mode(model_type: str, data: st.DataObject) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    config = data.draw(hf_configs(model_type), label="config")
    found = hf_model(config)
    model = found.model()
    theirs = built(config, found.class_name, device="cpu").eval()
    (layout,) = model.input_layout
    size = layout[-1]
    assert isinstance(size, int)
    x = torch.randn(2, found.architecture.arguments()["channels"], size, size)
    with (
        torch.no_grad(),
        sdpa_kernel(SDPBackend.MATH),
        flop_counter.FlopCounterMode(display=False) as counter,
    ):
        theirs(x)
    assert counter.get_total_flops() == 2 * analyze(model, batch=2).macs


# -- checkpoint files: what save_pretrained writes, checked by inspect -------------------
@pytest.mark.parametrize("model_type", TYPES)
@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_saved_checkpoint_agrees_with_its_config(
    model_type: str, data: st.DataObject, tmp_path: Path
) -> None:
    config = data.draw(hf_configs(model_type), label="config")
    found = hf_model(config)
    folder = tmp_path / f"m{data.draw(st.integers(0, 10**9))}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built(config, found.class_name, device="cpu").save_pretrained(folder)
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as stored:
        files = sorted((n, tuple(stored.get_slice(n).get_shape())) for n in stored.keys())  # noqa: SIM118
    # the checkpoint layout's names are the files' own (ViT's and DINOv2's transformers 4
    # names, which transformers 5 renames on load; the others as the class holds them)
    mine = found.checkpoint_model()
    listed = [(n, tuple(s)) for n, s in mine.named_parameters()] + _expanded(mine)
    assert sorted(listed) == files
    check = check_folder(str(folder))
    assert check.ok, check
    report = run(["inspect", str(folder)], 80)
    assert report.exit_code == 0, report.output
    assert "The checkpoint agrees with its config." in report.stdout
    assert max(len(line) for line in report.stdout.splitlines()) <= 80


# -- bad input: one line naming the field ------------------------------------------------
def _write(tmp_path: Path, config: dict[str, Any]) -> str:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path / "config.json")


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"model_type": "vit", "image_size": 30}, "image_size", "patch_size divides"),
        ({"model_type": "vit", "image_size": [224, 224]}, "image_size", "an integer"),
        ({"model_type": "dinov2", "num_attention_heads": 5}, "num_attention_heads", "divide"),
        ({"model_type": "dinov2", "mlp_ratio": 2.5}, "mlp_ratio", "an integer"),
        (
            {
                "model_type": "convnext",
                "depths": [3, 3],
                "hidden_sizes": [96, 192],
                "num_stages": 4,
            },
            "num_stages",
            "length of depths",
        ),
        (
            {"model_type": "convnext", "depths": [3, 3], "num_stages": 2},
            "depths",
            "one entry per stage",
        ),
        ({"model_type": "resnet", "depths": []}, "depths", "list of integers"),
        ({"model_type": "resnet", "hidden_sizes": [2, 8, 8, 8]}, "hidden_sizes", ">= 4"),
        ({"model_type": "resnet", "layer_type": "wide"}, "layer_type", "bottleneck"),
    ],
)
def test_bad_configs_are_one_line(
    tmp_path: Path, config: dict[str, Any], field: str, words: str
) -> None:
    result = run(["hf", _write(tmp_path, config)], 80)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and words in lines[0], lines


@pytest.mark.parametrize(
    ("args", "flag", "words"),
    [
        (["vit", "--hidden", "64", "--layers", "2", "--heads", "4", "--image-size", "30"],
         "--image-size", "patch_size divides"),
        (["convnext", "--depths", "3,3,9", "--hidden-sizes", "96,192"], "--depths",
         "one entry per stage"),
        (["resnet", "--depths", "3,x"], "--depths", "integers >= 1"),
        (["dinov2", "--hidden", "64", "--layers", "2", "--heads", "3"], "--heads", "divide"),
    ],
)  # fmt: skip
def test_bad_flags_are_one_line(args: list[str], flag: str, words: str) -> None:
    result = run(args, 80)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and words in lines[0], lines


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("repo", sorted(PUBLISHED))
def test_the_command_fits_its_width(tmp_path: Path, repo: str, width: int) -> None:
    config, total = PUBLISHED[repo]
    result = run(["hf", _write(tmp_path, config), "--depth", "2"], width)
    assert result.exit_code == 0, result.output
    assert f"{total:,}" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= width


def test_library_and_command_agree() -> None:
    import shapecalc

    assert shapecalc.convnext(labels=1000).total == PUBLISHED["facebook/convnext-tiny-224"][1]
    assert shapecalc.resnet(labels=1000).total == PUBLISHED["microsoft/resnet-50"][1]
    result = run(["resnet", "--layer-type", "basic", "--depths", "2,2,2,2", "--hidden-sizes",
                  "64,128,256,512", "--labels", "1000", "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    # ResNet-18's tensors (torchvision's published num_params: 11,689,512)
    assert json.loads(result.stdout)["total"] == 11_689_512
