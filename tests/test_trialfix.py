"""Findings of a newcomer's trial, each pinned: a config's dtype that is no dtype, wrapping
of --verify's line, damaged files, sweep's CSV frontier, plot titles, the Rule column,
sweep's grid limit, missing local configs, LoRA's flag order, --reserve-gb, duplicate
safetensors names, DeepSeek-V3's wording and the README's examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shapecalc import ShapecalcError, from_hf_config
from tests.test_cli import run

LLAMA: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 100,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
}


def _config(tmp_path: Path, **changes: Any) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA, **changes}), encoding="utf-8")
    return str(path)


def one_error(args: list[str], width: int = 100) -> str:
    result = run(args, width)
    assert result.exit_code == 2, (args, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


# -- 1. a config's dtype that names no dtype ------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value"), [("torch_dtype", "float7"), ("dtype", "auto"), ("dtype", "torch.float16")]
)
@pytest.mark.parametrize("command", [["hf"], ["fit", "hf"]])
def test_config_dtype_not_a_dtype_refused(
    tmp_path: Path, key: str, value: str, command: list[str]
) -> None:
    path = _config(tmp_path, **{key: value})
    extra = ["--gpu", "h100"] if command[0] == "fit" else []
    line = one_error([*command, path, *extra])
    assert f'{key} = "{value}"' in line and "bfloat16, float16, float32" in line, line
    with pytest.raises(ShapecalcError) as err:
        from_hf_config(path)
    assert err.value.field == key and err.value.value == value


def test_config_dtype_names_are_torch_dtypes() -> None:
    torch = pytest.importorskip("torch")
    from shapecalc.adapters.hf_config import TORCH_DTYPE_NAMES

    assert {n for n in dir(torch) if isinstance(getattr(torch, n), torch.dtype)} == set(
        TORCH_DTYPE_NAMES
    )
    transformers = pytest.importorskip("transformers")
    for value in ("float7", "auto", "torch.float16"):  # what transformers refuses too
        with pytest.raises(AttributeError):
            transformers.LlamaConfig(dtype=value)
    assert transformers.LlamaConfig(dtype="float8_e4m3fn").dtype == torch.float8_e4m3fn
    from_hf_config({**LLAMA, "torch_dtype": "float8_e4m3fn"})  # taken


# -- 8. a missing local config is a missing file, not a Hub id -------------------------------
@pytest.mark.parametrize("name", ["nonexist.json", "sub/config.json", "nonexist"])
def test_missing_local_config_is_a_missing_file(
    tmp_path: Path, monkeypatch: Any, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cfg").mkdir()
    path = f"cfg/{name}"
    line = one_error(["hf", path])
    assert f"'{path}': no such file" in line and "hf download" not in line, line
    with pytest.raises(ShapecalcError) as err:
        from_hf_config(path)
    assert "no such file" in err.value.message and "hf download" not in err.value.message
    # a Hub id (its owner no folder here) keeps the download hint
    line = one_error(["hf", "some-org/some-model"])
    assert "hf download some-org/some-model config.json" in line, line


# -- 7. sweep's grid limit names the swept flags ---------------------------------------------
def test_sweep_grid_limit_names_the_flags() -> None:
    args = ["sweep", "lstm", "--vocab", "65", "--hidden", "128,256", "--layers", "1..100000"]
    line = one_error(args)
    assert line.startswith("Error: Invalid value for '--layers': "), line
    assert "--hidden 2 × --layers 100,000" in line and "200,000" in line, line
    assert "100,000 points" in line


# -- 9. each LoRA flag's own rule first ------------------------------------------------------
def test_lora_rank_rule_before_the_missing_targets(tmp_path: Path) -> None:
    line = one_error(["hf", _config(tmp_path), "--lora-rank", "0"])
    assert "Invalid value for '--lora-rank'" in line and "r must be an integer > 0" in line
    # a llama config's targets default to peft's for its type (q_proj, v_proj)
    result = run(["hf", _config(tmp_path), "--lora-rank", "4"])
    assert result.exit_code == 0 and "targets q_proj, v_proj" in result.stdout, result.output


# -- 10. a reserve larger than the GPU is bad input -------------------------------------------
@pytest.mark.parametrize("command", ["fit", "sweep"])
def test_reserve_beyond_the_gpu_is_refused(tmp_path: Path, command: str) -> None:
    sizes = ["--seq-len", "1024,2048"] if command == "sweep" else []
    args = [command, "hf", _config(tmp_path), *sizes, "--gpu", "h100", "--reserve-gb", "100"]
    line = one_error(args)
    assert "Invalid value for '--reserve-gb'" in line and "--reserve-gb 100" in line, line
    assert "85.5 GB" in line and "H100" in line, line
    result = run(["fit", "hf", _config(tmp_path), "--gpu", "h100", "--reserve-gb", "85"])
    assert result.exit_code == 0, result.output  # a reserve under the memory still answers


# -- 3. a cut torch.save file ------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_torch_zip_said_in_one_whole_line(tmp_path: Path, keep: float) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(64, 64), "b": torch.zeros(64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    line = one_error(["inspect", str(path)])
    assert "a truncated or damaged PyTorch zip checkpoint" in line, line
    assert line.endswith("save or copy it again"), line


# -- 11. a safetensors header naming a tensor twice -----------------------------------------
def _safetensors(path: Path, header: str, data: int) -> None:
    raw = header.encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + bytes(data))


@pytest.mark.parametrize("same_offsets", [False, True])
def test_duplicate_tensor_name_is_named(tmp_path: Path, same_offsets: bool) -> None:
    path = tmp_path / "dup.safetensors"
    second = "[0, 8]" if same_offsets else "[8, 16]"
    header = (
        '{"__metadata__": {"data_offsets": "x"}, '
        '"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
        f'"a": {{"dtype": "F32", "shape": [2], "data_offsets": {second}}}}}'
    )
    _safetensors(path, header, 8 if same_offsets else 16)
    line = one_error(["inspect", str(path)])
    assert "a: the header names this tensor twice" in line, line


def test_a_name_inside_metadata_is_no_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "ok.safetensors"
    header = (
        '{"__metadata__": {"note": "\\"data_offsets\\""}, '
        '"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
    )
    _safetensors(path, header, 8)
    assert run(["inspect", str(path)]).exit_code == 0


# -- 14. README's Python examples run, and its count of layer kinds is the code's ----------
README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    import re

    text = README.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_run_and_say_what_they_return() -> None:
    import ast

    checked = 0
    for block in _python_blocks():
        scope: dict[str, Any] = {}
        for line in block.splitlines():
            code, _, comment = line.partition("  # ")
            if not code.strip():
                continue
            said = comment.split(";")[0].strip()
            try:
                ast.parse(code, mode="eval")
                expected = ast.literal_eval(said)
            except (SyntaxError, ValueError):
                exec(code, scope)  # a statement, or a comment that is no value
                continue
            assert eval(code, scope) == expected, line
            checked += 1
    assert checked >= 12  # each example that shows a value is compared with it


def test_readme_layer_kinds_count_is_the_code_s() -> None:
    import re

    from shapecalc.layers import LAYER_KINDS

    said = re.search(r"cover (\d+) torch\.nn layer kinds", README.read_text(encoding="utf-8"))
    assert said is not None and int(said.group(1)) == len(LAYER_KINDS)
    assert f"{len(LAYER_KINDS)} layer kinds\n" in run(["layers"]).output


# -- 13. --layout checkpoint keeps the title; AWQ's refusal names AutoAWQ ---------------------
MIXTRAL: dict[str, Any] = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "vocab_size": 200,
    "max_position_embeddings": 512,
}


@pytest.mark.parametrize("command", [["fit", "hf"], ["hf"]])
def test_checkpoint_layout_keeps_class_and_path(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(MIXTRAL), encoding="utf-8")
    extra = ["--gpu", "h100"] if command[0] == "fit" else []
    result = run([*command, str(path), *extra, "--layout", "checkpoint"], 200)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"MixtralForCausalLM ({path}"), result.output[:200]


@pytest.mark.parametrize(("weights", "library"), [("awq", "AutoAWQ"), ("gptq", "GPTQModel")])
def test_fused_experts_refusal_names_the_method_s_library(
    tmp_path: Path, weights: str, library: str
) -> None:
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(MIXTRAL), encoding="utf-8")
    line = one_error(["fit", "hf", str(path), "--gpu", "h100", "--weights", weights])
    assert f"{library} quantizes one Linear per expert" in line, line
    assert ("GPTQModel" in line) == (library == "GPTQModel"), line


# -- 2. --verify's line wrapped to the terminal ------------------------------------------------
@pytest.mark.parametrize("width", [60, 80])
def test_verify_line_wrapped_to_the_width(tmp_path: Path, width: int) -> None:
    pytest.importorskip("transformers")
    for args in (
        ["lstm", "--vocab", "65", "--hidden", "32", "--layers", "2", "--verify"],
        ["hf", _config(tmp_path), "--verify"],
    ):
        result = run(args, width)
        assert result.exit_code == 0, result.output
        said = result.stderr.strip().splitlines()
        assert said and all(len(line) <= width for line in said), said
        assert " ".join(said).startswith("Verified against "), said
        assert " ".join(said).endswith("parameters, names and shapes identical"), said


# -- 12. DeepSeek-V3: the router's buffer, the fp8 memory line, what is not trained ----------
def _dsv3(tmp_path: Path, quantized: bool) -> str:
    config: dict[str, Any] = {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "hidden_size": 256,
        "intermediate_size": 512,
        "moe_intermediate_size": 128,
        "num_hidden_layers": 3,
        "first_k_dense_replace": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "q_lora_rank": 128,
        "kv_lora_rank": 128,
        "qk_nope_head_dim": 32,
        "qk_rope_head_dim": 32,
        "v_head_dim": 32,
        "n_routed_experts": 8,
        "n_shared_experts": 1,
        "num_experts_per_tok": 2,
        "n_group": 2,
        "topk_group": 1,
        "vocab_size": 512,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    if quantized:
        config["quantization_config"] = {
            "activation_scheme": "dynamic",
            "fmt": "e4m3",
            "quant_method": "fp8",
            "weight_block_size": [128, 128],
        }
    path = tmp_path / "dsv3.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


def test_dsv3_router_buffer_is_float32_and_said_so(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from shapecalc.analysis.cost import analyze

    path = _dsv3(tmp_path, quantized=False)
    config = transformers.AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        built = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    buffers = {n: b for n, b in built.named_buffers() if n.endswith("e_score_correction_bias")}
    assert buffers and {b.dtype for b in buffers.values()} == {torch.float32}
    model = from_hf_config(path)
    cost = analyze(model, batch=1, seq_len=8, dtype="bf16")
    assert cost.buffer_bytes == sum(b.numel() * b.element_size() for b in buffers.values())
    rule = next(line.rule for line in cost.memory if line.label == "buffers")
    assert "e_score_correction_bias (float32, 4 bytes each)" in rule, rule
    assert "running statistics" not in rule and "counters" not in rule, rule


def test_dsv3_fp8_trainable_and_memory_lines_say_what_they_count(tmp_path: Path) -> None:
    result = run(["hf", _dsv3(tmp_path, quantized=True)], 200)
    assert result.exit_code == 0, result.output
    lines = {line[:11].strip(): line[11:] for line in result.output.splitlines()}
    assert lines["Trainable"].split("; not trained: ")[1].endswith(" float32"), lines
    assert "float8_e4m3fn" in lines["Trainable"], lines
    assert lines["Memory"].startswith("quantized tensors as stored, the others at fp32 "), lines


# -- 5. the frontier chart's title says what the table's header says ---------------------------
@pytest.mark.parametrize("extra", [["--gpus", "2"], ["--gpus", "2", "--engine", "vllm"]])
def test_frontier_chart_title_is_the_header_s(tmp_path: Path, extra: list[str]) -> None:
    import re

    args = ["fit", "hf", _config(tmp_path), "--gpu", "h100", *extra, "--frontier", "--plot"]
    result = run(args, 80)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    on = re.search(r" on (.*?\)): fits", text)
    assert on is not None and "2 ×" in on.group(1), text[:300]
    assert ("vllm" in on.group(1)) == ("vllm" in extra)
    assert f"against batch on {on.group(1)}" in text, text


# -- 4. sweep --frontier --format csv carries the frontier, as JSON does -----------------------
def test_sweep_csv_carries_the_frontier_as_json_does(tmp_path: Path) -> None:
    import csv
    import io

    path = _config(tmp_path, max_position_embeddings=32768)
    args = ["sweep", "hf", path, "--vary", "hidden_size=64,128", "--seq-len", "4096,32768"]
    args += ["--memory-gb", "0.05", "--frontier"]
    as_csv = run([*args, "--format", "csv"], 200)
    as_json = run([*args, "--format", "json"], 200)
    assert as_csv.exit_code == 0 and as_json.exit_code == 0, as_csv.output + as_json.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    data = json.loads(as_json.stdout)
    assert len(data["frontiers"]) == 2 and len(rows) == len(data["points"]) == 4
    seen = set()
    for row in rows:
        mine = [
            f for f in data["frontiers"] if all(str(v) == row[k] for k, v in f["sizes"].items())
        ]
        assert len(mine) == 1, (row, data["frontiers"])
        for step in mine[0]["frontier"]:
            said = row[f"largest_context_b{step['batch']}"]
            assert said == ("" if step["largest_context"] is None else str(step["largest_context"]))
            seen.add(said)
    assert len(seen) > 2  # the frontiers differ from batch to batch and model to model


# -- 6. the Rule column never breaks inside a module name --------------------------------------
@pytest.mark.parametrize("width", [80, 100, 120])
def test_rule_column_keeps_names_whole(tmp_path: Path, width: int) -> None:
    import re

    path = _config(  # Llama-3.1-8B's sizes: its byte counts set the columns' widths
        tmp_path,
        hidden_size=4096,
        intermediate_size=14336,
        num_attention_heads=32,
        num_key_value_heads=8,
        num_hidden_layers=32,
        vocab_size=128256,
    )
    args = ["hf", path, "--lora-rank", "16", "--lora-targets", "all-linear", "--memory"]
    result = run([*args, "--training", "adamw-8bit"], width)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= width for line in lines)
    assert "recomputed" in result.output and "layers.{0..31}" in result.output
    for line in lines:
        for cell in line.split("│")[1:-1]:
            text = cell.strip()
            assert not re.search(r"\{\d*(\.\.?\d*)?$", text), line  # a range cut open
            assert not re.match(r"^(\.|\d*\}|\.\d)", text), line  # a name's tail alone


def test_vllm_profiles_a_model_of_short_context_as_several_sequences() -> None:
    """vLLM's dummy run spreads max_num_batched_tokens over requests (gpu_model_runner.py's
    _dummy_run): GPT-2 (a context of 1,024) is profiled at 2,048 tokens as 2 sequences of
    1,024, not refused as one sequence past its context; the profile line equals our
    prefill peak at B=2, T=1,024."""
    import json

    from click.testing import CliRunner

    from shapecalc.cli.app import cli

    args = ["fit", "gpt2", "--layers", "2", "--hidden", "64", "--heads", "2", "--vocab", "500"]
    args += ["--context", "1024", "--gpu", "l4", "--engine", "vllm", "--format", "json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = {line["label"]: line for line in json.loads(result.stdout)["account"]["lines"]}
    profile = lines["activations, profiling forward"]
    assert "2 sequences of 1,024" in profile["rule"]
    from shapecalc.analysis.fit import Fit
    from shapecalc.analysis.hardware import accelerator
    from shapecalc.architectures.gpt2 import gpt2

    model = gpt2(layers=2, hidden=64, heads=2, vocab=500, context=1024)
    fit = Fit(model, accelerator("l4"), dtype="bf16", batch=1, seq_len=1024)
    assert profile["bytes"] == fit.peak(2, 1024)
