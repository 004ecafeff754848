"""Total and active parameters: what a mixture holds and what one token uses, checked
against the model transformers builds (the routed experts' share worked out from its
tensors, not from shapecalc's rule), and how the reports say both."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc import llama, lstm_lm
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def used_by_one_token(model: Any, top_k: int) -> tuple[int, int]:
    """(total, active) of a transformers model: every tensor, the routed experts' tensors
    (those with a leading experts dimension under ``.experts.``) counted top_k / E."""
    total = active = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if ".experts." in name:
            experts = p.shape[0]
            assert p.numel() % experts == 0
            active += p.numel() // experts * top_k
        else:
            active += p.numel()
    return total, active


@settings(max_examples=12, deadline=None)
@given(
    experts=st.integers(1, 9),
    top=st.integers(1, 9),
    tie=st.booleans(),
    layers=st.integers(1, 3),
)
def test_mixtral_active_equals_the_share_transformers_routes(
    experts: int, top: int, tie: bool, layers: int
) -> None:
    k = min(top, experts)
    config = transformers.MixtralConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=24,
        num_local_experts=experts,
        num_experts_per_tok=k,
        tie_word_embeddings=tie,
    )
    with torch.device("meta"):
        theirs = transformers.MixtralForCausalLM(config)
    total, active = used_by_one_token(theirs, k)
    ours = llama(
        vocab=50,
        hidden=16,
        layers=layers,
        heads=4,
        kv_heads=2,
        intermediate=24,
        experts=experts,
        experts_per_token=k,
        tie_weights=tie,
    )
    assert (ours.total, ours.active) == (total, active)
    assert ours.routed
    assert ours.vocabulary == 50 * 16 * (1 if tie else 2)


def test_a_dense_model_uses_every_parameter() -> None:
    model = llama(vocab=100, hidden=32, layers=2, heads=4)
    assert not model.routed
    assert model.active == model.total
    assert (
        "Active"
        not in run(
            ["llama", "--vocab", "100", "--hidden", "32", "--layers", "2", "--heads", "4"]
        ).output
    )


def test_vocabulary_is_the_embedding_and_the_head() -> None:
    model = lstm_lm(vocab=65, hidden=512, layers=2)
    assert model.vocabulary == 65 * 512 + (512 * 65 + 65)
    assert (model.embeddings, model.head_params) == (65 * 512, 512 * 65 + 65)
    tied = lstm_lm(vocab=65, hidden=512, layers=2, tie_weights=True)
    assert tied.head_params == 65  # the head's weight is the embedding; its bias is its own
    assert tied.vocabulary == 65 * 512 + 65


def test_symbolic_active_formula() -> None:
    model = llama(vocab="V", hidden="H", layers="L", heads="A", intermediate="I", experts="E")
    assert str(model.active_formula) == "4·L·H² + L·H·E + 6·L·H·I + 2·L·H + 2·V·H + H"


MIXTRAL = [
    "llama",
    "--vocab",
    "32000",
    "--hidden",
    "4096",
    "--layers",
    "32",
    "--heads",
    "32",
    "--kv-heads",
    "8",
    "--intermediate",
    "14336",
    "--experts",
    "8",
]


@pytest.mark.parametrize("width", [80, 200])
def test_the_active_line_of_mixtral_8x7b(width: int) -> None:
    result = run(MIXTRAL, width=width)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Active 12,879,925,248 parameters per token (12.9 B)" in text
    assert (
        "12,748,853,248 (12.7 B) without the embedding table, "
        "12,617,781,248 (12.6 B) without it and the head" in text
    )
    assert all(len(line) <= width for line in result.output.splitlines())


def test_json_carries_total_and_active() -> None:
    result = run([*MIXTRAL, "--format", "json"])
    report = json.loads(result.output)
    assert report["total"] == 46_702_792_704
    assert report["active"] == 12_879_925_248
    assert report["embedding"] == report["head"] == 32000 * 4096
    assert report["active_formula"] == "2*L*D*H*K + 2*L*H**2 + L*H*E + 6*L*H*I + 2*L*H + 2*V*H + H"


def test_explain_says_why_active_and_total_differ() -> None:
    result = run([*MIXTRAL, "--explain"], width=200)
    assert "one token uses 12,879,925,248 (27.6% of them)" in result.output
    assert "weight memory follows the total" in result.output


def test_sweep_shows_active() -> None:
    result = run(["sweep", *MIXTRAL[:-2], "--experts", "4,8", "--show", "params,active"])
    assert result.exit_code == 0, result.output
    assert "active parameters per token = 131,072·E + 12,878,876,672" in result.output


def test_hf_names_a_mixture_as_its_checkpoint_stores_it(tmp_path: Any) -> None:
    """--layout checkpoint: each expert by name (Qwen3-MoE), MXFP4 blocks (gpt-oss, whose
    mxfp4 config is counted as transformers builds it, with a note); another quantization
    is still refused by name."""
    from tests.published_moe import GPT_OSS_20B, QWEN3_30B_A3B

    qwen = tmp_path / "qwen.json"
    qwen.write_text(json.dumps(QWEN3_30B_A3B))
    names = _names(run(["hf", str(qwen), "--layout", "checkpoint", "--format", "json"]).output)
    assert "model.layers.{0..47}.mlp.experts.{0..127}.gate_proj.weight" in names
    fused = _names(run(["hf", str(qwen), "--format", "json"]).output)
    assert "model.layers.{0..47}.mlp.experts.gate_up_proj" in fused
    oss = tmp_path / "oss.json"
    oss.write_text(json.dumps(GPT_OSS_20B))
    plain = run(["hf", str(oss)], width=200)
    assert plain.exit_code == 0, plain.output
    assert "quantization_config mxfp4: the checkpoint stores the experts' weights" in plain.output
    blocks = _names(run(["hf", str(oss), "--layout", "checkpoint", "--format", "json"]).output)
    # sliding and full layers take turns: two runs, the same tensors
    assert "model.layers.{0,2..22}.mlp.experts.gate_up_proj_blocks" in blocks
    assert "model.layers.{1,3..23}.mlp.experts.gate_up_proj_blocks" in blocks
    gptq = tmp_path / "gptq.json"
    gptq.write_text(json.dumps({**GPT_OSS_20B, "quantization_config": {"quant_method": "gptq"}}))
    refused = run(["hf", str(gptq)])  # GPTQ packs Linear layers; these experts are not
    assert refused.exit_code == 2 and "3-D tensors" in refused.output, refused.output


def _names(output: str) -> list[str]:
    return [p["name"] for layer in json.loads(output)["layers"] for p in layer["params"]]


@pytest.mark.parametrize("width", [60, 80])
def test_a_formula_longer_than_the_terminal_breaks_between_terms(tmp_path: Any, width: int) -> None:
    """DeepSeek-V3's total and active formulas are longer than a line: they break before a
    + or -, every continuation indented under its label, none at column 0."""
    from tests.published_moe import DEEPSEEK_V3

    config = tmp_path / "config.json"
    config.write_text(json.dumps(DEEPSEEK_V3))
    result = run(["hf", str(config)], width=width)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    footer = lines[
        lines.index("Total") + 1 : next(i for i, x in enumerate(lines) if x.startswith("Memory"))
    ]
    assert len(footer) > 4
    labels = ("Active", "Stored")  # the quantized tensors' line: fp8, as the config says
    assert all(
        line.startswith("  ") and len(line) <= width
        for line in footer
        if line not in labels and not line.startswith(("Stored ", "Trainable "))
    )
    assert any(line.startswith("    + ") for line in footer)
