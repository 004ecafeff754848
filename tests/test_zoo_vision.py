"""ViT-B/16, ConvNeXt-Tiny and DenseNet-121 written with the public composition API
(shapecalc/architectures/_vision.py) against torch twins written as torchvision writes
them (tests/zoo/torch_vision.py): every name and shape, the buffers, torchvision's
published totals (its weights' ``num_params``), the output shape, the FLOPs against
``FlopCounterMode`` at 224, the same numbers out of the built module, and what autograd
keeps."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc import ShapecalcError
from shapecalc.analysis.cost import analyze
from shapecalc.architectures._vision import CONVNEXT, SWIN, convnext, densenet, swin, vit

torch = pytest.importorskip("torch")
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from tests.measure import kept_bytes  # noqa: E402
from tests.zoo import torch_swin, torch_vision  # noqa: E402

#: torchvision's ``num_params`` of its weights (vision_transformer.py ViT_B_16_Weights,
#: convnext.py ConvNeXt_Tiny_Weights, densenet.py DenseNet121_Weights)
PUBLISHED = {
    "vit_b_16": 86_567_656,
    "convnext_tiny": 28_589_128,
    "densenet121": 7_978_856,
    "swin_t": 28_288_354,  # swin_transformer.py Swin_T_Weights
}


def models(device: str = "meta", *names: str) -> dict[str, tuple[shapecalc.Model, Any]]:
    makers = {
        "vit_b_16": lambda: (vit(), torch_vision.VisionTransformer(224, 16, 12, 12, 768, 3072)),
        "convnext_tiny": lambda: (convnext("tiny"), torch_vision.convnext(*CONVNEXT["tiny"])),
        "densenet121": lambda: (densenet(121), torch_vision.DenseNet()),
        "swin_t": lambda: (swin("t"), _swin_twin(*SWIN["t"])),
    }
    with torch.device(device):
        return {name: makers[name]() for name in names or makers}


def _swin_twin(
    embed: int,
    depths: tuple[int, ...],
    heads: tuple[int, ...],
    sd: float,
    window: int = 7,
    v2: bool = False,
) -> Any:
    classes = 1000 if window == 7 else 10
    return torch_swin.SwinTransformer(
        [4, 4], embed, list(depths), list(heads), [window] * 2, sd, classes, v2=v2
    )


#: a Swin small enough to run here: windows that pad and shift, then one that covers its map
SMALL_SWIN = {"embed_dim": 16, "depths": (2, 2), "num_heads": (2, 4), "window_size": (3, 3)}


@pytest.fixture(scope="module")
def zoo() -> dict[str, tuple[shapecalc.Model, Any]]:
    return models()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_names_shapes_and_published_totals(name: str, zoo: Any) -> None:
    model, twin = zoo[name]
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in twin.named_parameters()]
    assert model.named_buffers() == [(n, tuple(b.shape)) for n, b in twin.named_buffers()]
    assert model.total == sum(p.numel() for p in twin.parameters()) == PUBLISHED[name]
    built = shapecalc.build(model)  # meta: the module shapecalc makes has the same names
    assert [(n, p.shape) for n, p in built.named_parameters()] == [
        (n, p.shape) for n, p in twin.named_parameters()
    ]


def test_vit_names_as_torchvision_writes_them(zoo: Any) -> None:
    names = [n for n, _ in zoo["vit_b_16"][0].named_parameters()]
    assert names[:4] == [
        "class_token",
        "conv_proj.weight",
        "conv_proj.bias",
        "encoder.pos_embedding",
    ]
    layer = "encoder.layers.encoder_layer_11."
    assert f"{layer}self_attention.in_proj_weight" in names
    assert f"{layer}self_attention.out_proj.weight" in names
    assert f"{layer}mlp.3.bias" in names and names[-2:] == ["heads.head.weight", "heads.head.bias"]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_output_and_flops_at_224_against_flop_counter(name: str, zoo: Any) -> None:
    model, twin = zoo[name]
    cost = analyze(model, batch=2)
    x = torch.empty(2, 3, 224, 224, device="meta")
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        out = twin.eval()(x)
    assert cost.layers[-1].outputs == (tuple(out.shape),) == ((2, 1000),)
    assert counter.get_total_flops() == 2 * cost.macs


def _same_numbers(model: shapecalc.Model, twin: Any, size: int) -> None:
    built = shapecalc.build(model, device="cpu")
    built.load_state_dict(twin.state_dict())
    x = torch.randn(2, 3, size, size)
    # oneDNN off: its per-shape kernel setup, not the arithmetic, would take seconds here
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        assert torch.allclose(built.eval()(x), twin.eval()(x), atol=1e-5)


def test_built_modules_compute_what_the_twins_compute() -> None:
    torch.manual_seed(0)
    small = vit(32, 8, 2, 4, 64, 128, num_classes=10)
    _same_numbers(small, torch_vision.VisionTransformer(32, 8, 2, 4, 64, 128, 10), 32)
    _same_numbers(convnext(stages=SMALL, num_classes=10), torch_vision.convnext(SMALL, 0.1, 10), 32)
    _same_numbers(densenet(121), torch_vision.DenseNet(), 32)
    small_swin = swin(num_classes=10, stochastic_depth_prob=0.2, **SMALL_SWIN)  # type: ignore[arg-type]
    _same_numbers(small_swin, _swin_twin(16, (2, 2), (2, 4), 0.2, 3), 32)
    small_v2 = swin("v2_t", num_classes=10, stochastic_depth_prob=0.2, **SMALL_SWIN)  # type: ignore[arg-type]
    _same_numbers(small_v2, _swin_twin(16, (2, 2), (2, 4), 0.2, 3, v2=True), 32)


#: a ConvNeXt of torchvision's class, small enough to run here: two stages, stochastic
#: depth in every block but the first
SMALL = ((16, 2), (32, 3))


@pytest.mark.parametrize("name", ["convnext", "densenet121", "swin", "swin_v2"])
def test_activation_memory_against_autograd(name: str) -> None:
    if name.startswith("swin"):
        size = "v2_t" if name == "swin_v2" else "t"
        model = swin(size, num_classes=10, stochastic_depth_prob=0.2, **SMALL_SWIN)  # type: ignore[arg-type]
        twin = _swin_twin(16, (2, 2), (2, 4), 0.2, 3, v2=name == "swin_v2")
    elif name == "convnext":
        model, twin = convnext(stages=SMALL, num_classes=10), torch_vision.convnext(SMALL, 0.1, 10)
    else:
        model, twin = models("cpu", name)[name]
    torch.manual_seed(0)
    cost = analyze(model, ((2, 3, 32, 32),))
    assert kept_bytes(twin, [torch.randn(2, 3, 32, 32)]) == cost.activation_bytes


def test_bad_sizes_are_one_line_errors() -> None:
    with pytest.raises(ShapecalcError, match="divisible by patch_size"):
        vit(image_size=225)
    with pytest.raises(ShapecalcError, match="size must be one of"):
        convnext("huge")
    with pytest.raises(ShapecalcError, match="depth must be one of"):
        densenet(122)


@settings(max_examples=15, deadline=None)
@given(
    heads=st.integers(1, 3),
    head_dim=st.integers(1, 4),
    window=st.tuples(st.integers(2, 4), st.integers(2, 4)),
    shifted=st.booleans(),
    batch=st.integers(1, 2),
    side=st.tuples(st.integers(1, 9), st.integers(1, 9)),
)
def test_swin_v2_attention_against_torchvision_s(
    heads: int,
    head_dim: int,
    window: tuple[int, int],
    shifted: bool,
    batch: int,
    side: tuple[int, int],
) -> None:
    """ShiftedWindowAttentionV2 of drawn sizes against torchvision's class (its source in
    tests/zoo/torch_swin.py): names and shapes, the output, FlopCounterMode's count, and
    the bytes autograd keeps (one window in all, or one head, included)."""
    from shapecalc.layers.vision import ShiftedWindowAttentionV2

    dim = heads * head_dim
    shift = (window[0] // 2, window[1] // 2) if shifted else (0, 0)
    ours = ShiftedWindowAttentionV2(dim, window, shift, heads)
    twin = torch_swin.ShiftedWindowAttentionV2(dim, list(window), list(shift), heads)
    assert [(n, tuple(p.shape)) for n, p in twin.named_parameters()] == [
        (p.name, p.shape) for p in ours.params()
    ]
    assert [(n, tuple(b.shape)) for n, b in twin.named_buffers()] == [
        (b.name, b.shape) for b in ours.buffers()
    ]
    x = torch.randn(batch, side[0], side[1], dim)
    work = ours.work(tuple(x.shape))
    with FlopCounterMode(display=False) as counter:
        out = twin(x)
    assert (tuple(out.shape),) == work.outputs
    assert counter.get_total_flops() == 2 * work.macs
    assert kept_bytes(twin, [x.requires_grad_()]) == sum(s.nbytes(4) for s in work.saved)
