"""Words the trial found wrong: what a GGUF check's matched line counts, the singular of
one index problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shapecalc.adapters.hf_checkpoint import check_folder
from shapecalc.analysis.cost import analyze
from tests.test_cli import run
from tests.test_hf_checkpoint import damaged

gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")


def tiny_llama(path: Path, drop: str = "", halve: str = "") -> tuple[int, int]:
    """A LLaMA GGUF (the trial's tiny file); ``drop``: a tensor name end left out of each
    block; ``halve``: the name of a tensor stored with its first dim halved. (the numbers
    it holds, the numbers its metadata implies)"""
    v, h, layers, a, k, i = 256, 64, 2, 4, 2, 128
    d = h // a
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(layers)
    writer.add_context_length(512)
    writer.add_embedding_length(h)
    writer.add_feed_forward_length(i)
    writer.add_head_count(a)
    writer.add_head_count_kv(k)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(v)
    writer.add_rope_dimension_count(d)
    shapes = {"token_embd.weight": (v, h), "output_norm.weight": (h,), "output.weight": (v, h)}
    for n in range(layers):
        shapes |= {
            f"blk.{n}.attn_norm.weight": (h,),
            f"blk.{n}.attn_q.weight": (h, h),
            f"blk.{n}.attn_k.weight": (k * d, h),
            f"blk.{n}.attn_v.weight": (k * d, h),
            f"blk.{n}.attn_output.weight": (h, h),
            f"blk.{n}.ffn_norm.weight": (h,),
            f"blk.{n}.ffn_gate.weight": (i, h),
            f"blk.{n}.ffn_up.weight": (i, h),
            f"blk.{n}.ffn_down.weight": (h, i),
        }
    implied = sum(int(np.prod(s)) for s in shapes.values())
    held = 0
    for name, shape in shapes.items():
        if drop and name.endswith(drop):
            continue
        if name == halve:
            shape = (shape[0] // 2, *shape[1:])
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
        held += int(np.prod(shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return held, implied


@pytest.mark.parametrize("drop", ["", "ffn_down.weight", "attn_q.weight"])
def test_the_matched_line_says_whose_numbers_it_counts(drop: str, tmp_path: Path) -> None:
    held, implied = tiny_llama(tmp_path / "t.gguf", drop)
    result = run(["inspect", str(tmp_path / "t.gguf")], 200)
    assert result.exit_code == (1 if drop else 0), result.output
    said = " ".join(result.stdout.split())
    matched = 21 - (2 if drop else 0)
    assert (
        f"matched {matched} of the 21 tensors the metadata implies; all 21 hold {implied:,}" in said
    )
    assert f"{held:,} parameters" in said  # the file's own, in its header line
    assert not re.search(r"matched +\d+ tensors · [\d,]+ numbers implied", said)


def test_one_index_problem_is_singular(tmp_path: Path) -> None:
    folder = damaged(tmp_path)
    (folder / "model.safetensors.index.json").unlink()
    assert len(check_folder(str(folder)).index_problems) == 1
    result = run(["inspect", str(folder)], 200)
    assert result.exit_code == 1
    assert "1 index problem." in result.stdout or "1 index problem," in result.stdout
    assert "1 index problems" not in result.stdout


def test_fit_help_says_dp_is_not_taken_there() -> None:
    shown = " ".join(run(["fit", "hf", "--help"], 200).stdout.split())
    assert "--dp N Not taken by fit, which answers the fewest data-parallel ranks" in shown
    model = " ".join(run(["hf", "--help"], 200).stdout.split())
    assert "--dp N Data-parallel ranks: adds the memory of one GPU" in model


def _config(tmp_path: Path, **changes: object) -> str:
    import json

    from tests.test_trial_inputs import LLAMA

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA, "hidden_size": 64, "intermediate_size": 64, **changes}))
    return str(path)


def test_quantized_weights_are_labelled_as_stored(tmp_path: Path) -> None:
    args = ["fit", "hf", _config(tmp_path), "--memory-gb", "80", "--training", "adamw"]
    said = " ".join(run([*args, "--weights", "nf4"], 200).stdout.split())
    assert "bitsandbytes 4-bit nf4, the others 2 bytes each (bf16)" in said
    plain = " ".join(run(args, 200).stdout.split())
    assert "│ 2 bytes each (bf16), whole" in plain and "nf4" not in plain


MIXTRAL = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
}


def test_formats_that_leave_fused_experts_say_so(tmp_path: Path) -> None:
    """bitsandbytes converts nn.Linear only: transformers' replace_with_bnb_linear leaves
    MixtralExperts' 3-D gate_up_proj and down_proj as they are (checked here), so nf4
    can weigh more than fp8, which converts the experts."""
    import torch
    import transformers
    from transformers.integrations.bitsandbytes import replace_with_bnb_linear

    pytest.importorskip("bitsandbytes")
    config = transformers.MixtralConfig(
        vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, num_local_experts=4,
    )  # fmt: skip
    with torch.device("meta"):
        model = transformers.MixtralForCausalLM(config)
    bnb = transformers.BitsAndBytesConfig(load_in_4bit=True)
    model = replace_with_bnb_linear(model, quantization_config=bnb)
    experts = model.model.layers[0].mlp.experts
    assert type(experts.gate_up_proj) is torch.nn.Parameter and experts.gate_up_proj.dim() == 3
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"

    args = ["fit", "hf", _config(tmp_path, **MIXTRAL), "--memory-gb", "80", "--formats"]
    said = " ".join(run(args, 200).stdout.replace("│", " ").split())
    assert (
        "; nf4, fp4, bnb4, int8, bnb8 leave the fused experts at bf16 (their quantizer "
        "converts nn.Linear only)" in said
    )
    dense = run([*args[:2], _config(tmp_path), *args[3:]], 200).stdout
    assert "nf4" in dense and "fused experts" not in dense


T5 = {
    "architectures": ["T5ForConditionalGeneration"],
    "model_type": "t5",
    "vocab_size": 40,
    "d_model": 8,
    "d_kv": 4,
    "d_ff": 12,
    "num_layers": 2,
    "num_heads": 2,
}


@pytest.mark.parametrize("command", [["hf"], ["fit", "hf"]])
def test_source_len_reaches_an_encoder_decoders_config(command: list[str], tmp_path: Path) -> None:
    """README's encoder-decoder line: --source-len as `shapecalc t5` takes it, on hf and
    fit hf too; the encoder's length in the cross-attention cache."""
    import json

    from shapecalc.adapters.hf_config import from_hf_config, hf_model
    from shapecalc.cli.hf_options import with_source_len

    path = tmp_path / "config.json"
    path.write_text(json.dumps(T5))
    extra = ["--memory", "--batch", "1", "--seq-len", "5"] if command == ["hf"] else []
    extra += ["--memory-gb", "1"] if command != ["hf"] else []
    result = run([*command, str(path), *extra, "--source-len", "37"], 200)
    assert result.exit_code == 0, result.output
    model = with_source_len(hf_model(T5), 37).model()
    cost = analyze(model, batch=1, seq_len=5, dtype="fp32", training="none")
    cross = [s for _, s in cost.state if s.kind == "cross attention"]
    assert cross and all(37 in s.shape for s in cross)
    plain = analyze(from_hf_config(T5), batch=1, seq_len=5, dtype="fp32", training="none")
    assert cost.state_bytes != plain.state_bytes
    if command == ["hf"]:
        assert "S=37" in result.stdout
    llama = tmp_path / "llama.json"
    llama.write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    refused = run([*command, str(llama), "--source-len", "3", *extra], 200)
    assert refused.exit_code == 2 and "is not an encoder-decoder" in refused.stderr
