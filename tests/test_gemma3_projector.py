"""Gemma 3's multimodal projector (shapecalc/architectures/gemma3.py, ``_projector``) and the
steps it is made of (``MatMul``, ``Contiguous``, ``Gemma3RMSNorm``): a real tiny
Gemma3ForConditionalGeneration run on the CPU with images, its FLOPs module by module
against FlopCounterMode, and what autograd keeps in the projector (and in SigLIP's pooling
head, which the tower runs beside the tokens Gemma 3 reads) against the tensors the real
modules save; each step against torch on drawn shapes; the refusals in one line.

transformers' forward (models/gemma3/modeling_gemma3.py, Gemma3MultiModalProjector):
transpose(1, 2), reshape to (B, E, P, P), contiguous, avg_pool (kernel P // ⌊√U⌋), flatten(2),
transpose(1, 2), mm_soft_emb_norm, torch.matmul with mm_input_projection_weight.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.core.errors import ShapecalcError
from shapecalc.layers.transformers import Gemma3RMSNorm
from tests.measure import kept_bytes
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode

IMAGE = 3  # the image token's id in the drawn configs


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """A tiny gemma3 config: P patches a side (1 to 6), U image tokens that P pools to,
    a tower of E = heads × head width (E = 1 too), with or without its pooling head."""
    patch = draw(st.integers(1, 4))
    per = draw(st.integers(1, 6))
    side = draw(st.integers(1, per))
    heads = draw(st.integers(1, 2))
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": heads * draw(st.integers(1, 4)),
        "intermediate_size": draw(st.integers(1, 12)),
        "num_hidden_layers": 1,
        "num_attention_heads": heads,
        "image_size": per * patch + draw(st.integers(0, patch - 1)),
        "patch_size": patch,
        "vision_use_head": draw(st.booleans()),
    }
    text = {
        "model_type": "gemma3_text",
        "vocab_size": 40,
        "hidden_size": 16,
        "intermediate_size": 24,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 8,
        "sliding_window": 4,
        "pad_token_id": 0,
    }
    return {
        "model_type": "gemma3",
        "text_config": text,
        "vision_config": vision,
        # the U the projector pools to from the side drawn: (P // (P // side))² (a side
        # of 4 with P = 6 pools by 1 to 36); any other U is refused (test_trial_fixes.py)
        "mm_tokens_per_image": (per // (per // side)) ** 2,
        "image_token_index": IMAGE,
        "boi_token_index": 1,
        "eoi_token_index": 2,
    }


def real(config: dict[str, Any]) -> Any:
    fields = {k: v for k, v in config.items() if k != "model_type"}
    conf = transformers.Gemma3Config(**fields)
    return transformers.Gemma3ForConditionalGeneration._from_config(
        conf, attn_implementation="eager"
    )


def pooled_tokens(config: dict[str, Any]) -> int:
    """What transformers' projector gives per image: (P // kernel)²."""
    vision = config["vision_config"]
    per = vision["image_size"] // vision["patch_size"]
    kernel = per // int(config["mm_tokens_per_image"] ** 0.5)
    return (per // kernel) ** 2


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(config=configs(), batch=st.integers(1, 2))
def test_a_forward_with_images_costs_what_flop_counter_mode_counts(
    config: dict[str, Any], batch: int
) -> None:
    """Every part's FLOPs (the tower with its head, the projector's product, the language
    model, the head) and the whole forward's, on prompts holding each image's tokens."""
    model = hf_model(config).model()
    tokens = pooled_tokens(config)
    side = config["vision_config"]["image_size"]
    ids = torch.tensor([[1, *[IMAGE] * tokens, 2, 5]] * batch)
    cost = analyze(model, batch=batch, seq_len=ids.shape[1], training="none")
    mine: dict[str, int] = {}
    for row in cost.layers:
        part = ".".join(row.name.split(" ")[0].split(".")[:2])
        mine[part] = mine.get(part, 0) + 2 * row.macs
    theirs = real(config).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(
            input_ids=ids,
            pixel_values=torch.randn(batch, 3, side, side),
            token_type_ids=(ids == IMAGE).long(),
        )
    counts = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    top = "Gemma3ForConditionalGeneration"
    for part in ("model.vision_tower", "model.multi_modal_projector", "model.language_model"):
        assert mine[part] == counts[f"{top}.{part}"], part
    assert mine["lm_head"] == counts[f"{top}.lm_head"]
    assert 2 * cost.macs == counts["Global"]
    width, hidden = config["vision_config"]["hidden_size"], config["text_config"]["hidden_size"]
    assert mine["model.multi_modal_projector"] == 2 * batch * tokens * width * hidden


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(config=configs(), batch=st.integers(1, 2))
def test_the_projector_keeps_what_autograd_keeps(config: dict[str, Any], batch: int) -> None:
    """The projector on the tower's tokens in training mode: the grid's copy (which
    avg_pool keeps), Gemma3RMSNorm's input, 1/rms, normalised input and 1 + weight, and
    the product's input (the weight is a parameter); SigLIP's head likewise (its probe
    repeated per image, a copy the attention keeps). Names and shapes as transformers'."""
    found = hf_model(config)
    model = found.model()
    theirs = real(config)
    vision = config["vision_config"]
    per = vision["image_size"] // vision["patch_size"]
    tokens = torch.randn(batch, per * per, vision["hidden_size"], requires_grad=True)

    def ours(path: str) -> Any:
        """The part at ``path`` on the tower's tokens, alone (what an earlier part keeps
        of the same tensor is not the part's to count)."""
        node = model.root
        for name in path.split("."):
            node = node.child(name).node
        return analyze(shapecalc.Model(path, node), (tuple(tokens.shape),))

    projector = theirs.model.multi_modal_projector
    cost = ours("model.multi_modal_projector")
    assert kept_bytes(projector, [tokens]) == cost.activation_bytes
    assert cost.layers[-1].outputs == (tuple(projector(tokens).shape),)
    if vision["vision_use_head"]:
        head = theirs.model.vision_tower.head
        assert kept_bytes(head, [tokens]) == ours("model.vision_tower.head").activation_bytes
    built = shapecalc.build(model)
    assert [(n, tuple(p.shape)) for n, p in built.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in theirs.named_parameters()
    ]
    pool = built.get_submodule("model.multi_modal_projector.avg_pool")
    assert isinstance(pool, torch.nn.AvgPool2d)


def test_the_built_projector_computes_what_transformers_computes() -> None:
    """shapecalc.build's module, given transformers' weights, gives its projector's
    output (the steps' torch twins: MatMul, Contiguous, Gemma3RMSNorm, the pooling)."""
    config = {
        "model_type": "gemma3",
        "text_config": {"model_type": "gemma3_text", "vocab_size": 40, "hidden_size": 16,
                        "intermediate_size": 8, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8},
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 8,
                          "intermediate_size": 8, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "image_size": 24, "patch_size": 4},
        "mm_tokens_per_image": 9,
    }  # fmt: skip
    theirs = real(config).eval()
    for p in theirs.parameters():
        p.data.normal_()
    ours = shapecalc.build(hf_model(config).model(), device="cpu").eval()
    ours.load_state_dict(theirs.state_dict(), strict=False)
    tokens = torch.randn(2, 36, 8)
    got = ours.model.multi_modal_projector(tokens)
    want = theirs.model.multi_modal_projector(tokens)
    assert got.shape == want.shape == (2, 9, 16)
    assert torch.allclose(got, want, atol=1e-5)


# -- the steps against torch ---------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), max_size=2),
    m=st.integers(1, 5),
    k=st.integers(1, 5),
    n=st.integers(1, 5),
    other=st.integers(1, 5),
)
def test_matmul_against_torch_matmul(batch: list[int], m: int, k: int, n: int, other: int) -> None:
    """x (*batch, M, K) @ w (K', N): the shape, FLOPs and kept tensors torch has, or a
    one-line refusal where K' is not K."""
    x = torch.randn(*batch, m, k, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(other, n))
    spec = shapecalc.MatMul()
    if other != k:
        with pytest.raises(RuntimeError):
            torch.matmul(x, w)
        with pytest.raises(ShapecalcError, match="is not the matrix's rows") as err:
            spec.work(tuple(x.shape), tuple(w.shape))
        assert "\n" not in str(err.value)
        return

    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = w

        def forward(self, x: Any) -> Any:
            return torch.matmul(x, self.w)

    with FlopCounterMode(display=False) as counter:
        out = torch.matmul(x, w)
    work = spec.work(tuple(x.shape), tuple(w.shape))
    assert work.outputs == (tuple(out.shape),)
    assert counter.get_total_flops() == 2 * work.macs
    # the parameter is no activation: a model holding it keeps the input alone
    model = shapecalc.Model(
        "holder",
        shapecalc.Block(
            "Holder",
            {"w": shapecalc.Parameter((other, n))},
            flow=shapecalc.chain(shapecalc.parallel((), "w"), spec),
        ),
    )
    cost = analyze(model, (tuple(x.shape),))
    assert kept_bytes(Holder(), [x]) == cost.activation_bytes == 4 * x.numel()
    built = shapecalc.build(model, device="cpu")
    built.w.data.copy_(w.data)
    assert torch.equal(built(x), out)


@pytest.mark.parametrize(
    "shapes", [((3,), (3, 2)), ((2, 3), (3,)), ((2, 2, 3), (2, 3, 4)), ((2, 3),)]
)
def test_matmul_refuses_what_it_does_not_count_in_one_line(shapes: Any) -> None:
    with pytest.raises(ShapecalcError) as err:
        shapecalc.MatMul().output_shapes(*shapes)
    assert "\n" not in str(err.value) and "matmul" in str(err.value)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(2, 4), min_size=2, max_size=4).map(tuple))
def test_contiguous_is_a_copy_torch_makes(shape: tuple[int, ...]) -> None:
    """After a transpose, .contiguous() is a new tensor of the same shape (a new storage),
    no FLOPs, nothing kept; the spec says so."""
    x = torch.randn(*shape, requires_grad=True)
    t = x.transpose(0, 1)
    assert not t.is_contiguous()
    with FlopCounterMode(display=False) as counter:
        out = t.contiguous()
    work = shapecalc.Contiguous().work(tuple(t.shape))
    assert work.outputs == (tuple(out.shape),) and not work.inplace and not work.saved
    assert counter.get_total_flops() == 0
    assert out.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple))
def test_gemma3_rms_norm_keeps_what_transformers_keeps(shape: tuple[int, ...]) -> None:
    """transformers' Gemma3RMSNorm: the parameter, the output, what autograd keeps
    (input, 1/rms, the normalised input, 1 + weight), and the built twin's output."""
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm as Theirs

    dim = shape[-1]
    theirs = Theirs(dim)
    theirs.weight.data.normal_()
    spec = Gemma3RMSNorm(dim)
    assert [(p.name, p.shape) for p in spec.params()] == [
        (n, tuple(p.shape)) for n, p in theirs.named_parameters()
    ]
    x = torch.randn(*shape, requires_grad=True)
    work = spec.work(shape)
    assert work.outputs == (shape,)
    assert kept_bytes(theirs, [x]) == work.kept_bytes(4)
    built = shapecalc.build(spec, device="cpu")
    built.load_state_dict(theirs.state_dict())
    assert torch.allclose(built(x), theirs(x))
    with pytest.raises(ShapecalcError) as err:
        spec.output_shapes((*shape[:-1], dim + 1))
    assert "\n" not in str(err.value)


# -- the command line -----------------------------------------------------------------------
SMALL = [
    "gemma3", "--head", "vision", "--vocab", "40", "--hidden", "16", "--layers", "1",
    "--heads", "2", "--vision-hidden", "8", "--vision-heads", "2", "--vision-layers", "1",
    "--vision-intermediate", "8", "--image-size", "24", "--patch-size", "4",
]  # fmt: skip


@pytest.mark.parametrize("width", [80, 200])
def test_the_projector_s_steps_are_shown_at_80_and_200_columns(width: int) -> None:
    result = run([*SMALL, "--image-tokens", "9", "--flops"], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.stdout.splitlines())
    text = " ".join(result.stdout.split())
    assert "model.multi_modal_projector.avg_pool" in text
    assert "model.multi_modal_projector (matmul)" in text
    assert "not in the FLOPs" not in text
    explained = run([*SMALL, "--image-tokens", "9", "--explain"], width)
    assert explained.exit_code == 0, explained.output
    said = " ".join(explained.stdout.split())
    assert "6² patch tokens are average-pooled by 2 × 2 windows to 9" in said


def test_too_many_image_tokens_counts_the_tensors_and_refuses_a_cost() -> None:
    """⌊√U⌋ beyond the patches per side: transformers builds the model (AvgPool2d of
    kernel 0) and fails on its first image; the tensors are counted, a cost is one line."""
    counted = run([*SMALL, "--image-tokens", "49"], 80)
    assert counted.exit_code == 0, counted.output
    assert "model.multi_modal_projector: 136 parameters" in " ".join(counted.stdout.split())
    refused = run([*SMALL, "--image-tokens", "49", "--flops"], 80)
    assert refused.exit_code == 2
    assert "mm_tokens_per_image (--image-tokens) = 49" in refused.stderr
    assert "⌊√49⌋ = 7 > 6" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_transformers_default_tower_with_256_tokens_runs_no_image(tmp_path: Path) -> None:
    """A gemma3 config without vision_config (SigLIP's defaults: 224 / 16, 14 patches a
    side) and mm_tokens_per_image 256: the tensors as transformers builds them; a cost
    refused in one line naming the field, as transformers' forward fails on an image."""
    config = {
        "model_type": "gemma3",
        "text_config": {"model_type": "gemma3_text", "vocab_size": 40, "hidden_size": 16,
                        "intermediate_size": 8, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8},
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    counted = run(["hf", str(tmp_path), "--verify"], 200)
    assert counted.exit_code == 0, counted.output
    assert "Verified against transformers" in counted.stderr
    refused = run(["hf", str(tmp_path), "--memory"], 200)
    assert refused.exit_code == 2
    assert "mm_tokens_per_image (--image-tokens) = 256" in refused.stderr
    assert "⌊√256⌋ = 16 > 14" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = real(config).eval()
    with pytest.raises(RuntimeError, match="stride should not be zero"):
        width = theirs.config.vision_config.hidden_size
        theirs.model.multi_modal_projector(torch.randn(1, 196, width))
