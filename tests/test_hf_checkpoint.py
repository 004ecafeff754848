"""``shapecalc inspect FOLDER``: checkpoint folders written by ``transformers``' own
``save_pretrained`` (one file, and shards with their index) from small models of every
supported model type, checked against their config.json; then damaged (a tensor removed,
one reshaped, one added, one of another dtype, a shard lost) and checked again."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from shapecalc.adapters.hf_checkpoint import check_folder
from tests.test_cli import run
from tests.test_schema import validator
from tests.twins import hf

torch = pytest.importorskip("torch")
t = hf()

SMALL = {
    "vocab_size": 40,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 24,
}
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("LlamaForCausalLM", {"num_key_value_heads": 2}),
    "llama-tied": ("LlamaForCausalLM", {"tie_word_embeddings": True}),
    "mistral": ("MistralForCausalLM", {"num_key_value_heads": 2}),
    "mixtral": ("MixtralForCausalLM", {"num_key_value_heads": 2, "num_local_experts": 3}),
    "qwen2": ("Qwen2ForCausalLM", {"num_key_value_heads": 2}),
    "qwen3": ("Qwen3ForCausalLM", {"num_key_value_heads": 2, "head_dim": 8}),
    "gemma": ("GemmaForCausalLM", {"num_key_value_heads": 2, "head_dim": 8}),
    "gemma2": ("Gemma2ForCausalLM", {"num_key_value_heads": 2, "head_dim": 4}),
    "phi3": ("Phi3ForCausalLM", {"pad_token_id": 0}),
    "gpt_neox": ("GPTNeoXForCausalLM", {}),
    "gpt2": ("GPT2LMHeadModel", {}),
    "bert": ("BertForMaskedLM", {}),
    "roberta": ("RobertaForMaskedLM", {}),
    "bert-body": ("BertModel", {}),
}


def save(tmp_path: Path, key: str, *, shards: bool, dtype: Any = None) -> Path:
    """``save_pretrained`` of a small model of ``key``: one file, or shards and an index."""
    class_name, extra = MODELS[key]
    model_type = key.split("-")[0]
    sizes = dict(SMALL)
    if model_type == "gpt2":  # GPT-2's MLP size is n_inner
        sizes["n_inner"] = sizes.pop("intermediate_size")
    config = t.AutoConfig.for_model(model_type, **sizes, **extra)
    model = getattr(t, class_name)(config)
    if dtype is not None:
        model = model.to(dtype)
    folder = tmp_path / f"{key}-{'shards' if shards else 'one'}"
    model.save_pretrained(folder, max_shard_size="8KB" if shards else "5GB")
    return folder


def header(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def rewrite(path: Path, tensors: dict[str, Any], data: bytes) -> None:
    """A safetensors file of ``tensors`` (dtype, shape, bytes), data laid out anew."""
    out, blobs, offset = {}, [], 0
    for name, (dtype, shape, blob) in tensors.items():
        out[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(out).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def tensors_of(path: Path) -> dict[str, Any]:
    head, data = header(path)
    head.pop("__metadata__", None)
    return {
        n: (e["dtype"], e["shape"], data[e["data_offsets"][0] : e["data_offsets"][1]])
        for n, e in head.items()
    }


def shard_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


@pytest.mark.parametrize("key", sorted(MODELS))
@pytest.mark.parametrize("shards", [False, True])
def test_saved_checkpoints_agree_with_their_config(tmp_path: Path, key: str, shards: bool) -> None:
    folder = save(tmp_path, key, shards=shards)
    if shards:
        assert (folder / "model.safetensors.index.json").exists()
        assert len(shard_files(folder)) > 1
    check = check_folder(str(folder))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape, check.wrong_dtype)
    assert check.stored_total == check.expected_total
    result = run(["inspect", str(folder)])
    assert result.exit_code == 0, result.output
    assert "agrees with its config" in result.stdout
    report = json.loads(run(["inspect", str(folder), "--format", "json"]).stdout)
    validator("inspect").validate(report)
    assert report["check"]["ok"] is True


def damaged(tmp_path: Path, key: str = "llama") -> Path:
    return save(tmp_path, key, shards=True)


def edit(folder: Path, change: Any) -> None:
    """Apply ``change(tensors)`` to the shard holding the first layer's q_proj, and keep
    the index true to the files (so only the tensors are wrong)."""
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    target = next(
        f
        for f in shard_files(folder)
        if any("layers.0.self_attn.q_proj" in n for n in tensors_of(f))
    )
    tensors = tensors_of(target)
    change(tensors)
    rewrite(target, tensors, b"")
    index["weight_map"] = {n: f for n, f in index["weight_map"].items() if f != target.name} | {
        n: target.name for n in tensors
    }
    index_path.write_text(json.dumps(index))


def test_a_removed_tensor_is_missing(tmp_path: Path) -> None:
    folder = damaged(tmp_path)
    edit(folder, lambda ts: ts.pop("model.layers.0.self_attn.q_proj.weight"))
    check = check_folder(str(folder))
    assert [n for n, _ in check.missing] == ["model.layers.0.self_attn.q_proj.weight"]
    assert not check.ok and not check.unexpected and not check.wrong_shape
    result = run(["inspect", str(folder)])
    assert result.exit_code == 1
    assert "missing     model.layers.0.self_attn.q_proj.weight (16, 16)" in result.stdout
    assert "1 missing" in result.stdout


def test_a_reshaped_tensor_is_of_the_wrong_shape(tmp_path: Path) -> None:
    folder = damaged(tmp_path)

    def reshape(ts: dict[str, Any]) -> None:
        dtype, _, blob = ts["model.layers.0.self_attn.q_proj.weight"]
        ts["model.layers.0.self_attn.q_proj.weight"] = (dtype, [8, 32], blob)

    edit(folder, reshape)
    check = check_folder(str(folder))
    assert [(m.name, m.expected, m.found) for m in check.wrong_shape] == [
        ("model.layers.0.self_attn.q_proj.weight", (16, 16), (8, 32))
    ]
    report = json.loads(run(["inspect", str(folder), "--format", "json"]).stdout)
    validator("inspect").validate(report)
    assert report["check"]["wrong_shape"][0]["found"] == [8, 32]
    assert run(["inspect", str(folder), "--format", "json"]).exit_code == 1


def test_an_added_tensor_is_unexpected(tmp_path: Path) -> None:
    folder = damaged(tmp_path)

    def add(ts: dict[str, Any]) -> None:
        ts["model.layers.0.self_attn.extra.weight"] = ("F32", [2, 3], bytes(24))

    edit(folder, add)
    check = check_folder(str(folder))
    assert check.unexpected == (("model.layers.0.self_attn.extra.weight", (2, 3), "float32"),)
    assert run(["inspect", str(folder)]).exit_code == 1


def test_another_dtype_is_reported(tmp_path: Path) -> None:
    folder = save(tmp_path, "llama", shards=True, dtype=torch.bfloat16)

    def widen(ts: dict[str, Any]) -> None:
        _, shape, blob = ts["model.layers.0.self_attn.q_proj.weight"]
        ts["model.layers.0.self_attn.q_proj.weight"] = ("F32", shape, blob * 2)

    edit(folder, widen)
    check = check_folder(str(folder))
    assert check.dtype == "bfloat16"
    assert [(m.name, m.found) for m in check.wrong_dtype] == [
        ("model.layers.0.self_attn.q_proj.weight", "float32")
    ]


def test_a_lost_shard_and_a_false_index_are_reported(tmp_path: Path) -> None:
    folder = damaged(tmp_path)
    lost = shard_files(folder)[-1]
    names = list(tensors_of(lost))
    lost.unlink()
    check = check_folder(str(folder))
    # the cause, with its tensors counted and a few named, not each one listed missing
    said = [p for p in check.index_problems if lost.name in p]
    assert len(said) == 1 and f"its {len(names):,} tensors are missing" in said[0]
    assert names[0] in said[0]
    assert not set(names) & {n for n, _ in check.missing}
    result = run(["inspect", str(folder)], 200)
    assert result.exit_code == 1
    check_part = result.stdout.split("Against its config.json")[1].splitlines()
    assert check_part[2].startswith(f"  index       shard {lost.name}")
    assert not any(line.startswith("  missing") for line in check_part)


def test_old_names_load_as_transformers_loads_them(tmp_path: Path) -> None:
    """A body saved without the head's prefix, LayerNorm.gamma/beta, and the buffers
    transformers drops: GPT-2 and BERT as their Hub repositories hold them."""
    folder = save(tmp_path, "gpt2", shards=False)
    path = folder / "model.safetensors"
    tensors = {n.removeprefix("transformer."): v for n, v in tensors_of(path).items()}
    tensors["h.0.attn.bias"] = ("F32", [1, 1, 4, 4], bytes(64))
    rewrite(path, tensors, b"")
    check = check_folder(str(folder))
    assert check.ok and check.ignored == ("h.0.attn.bias",)
    folder = save(tmp_path, "bert", shards=False)
    path = folder / "model.safetensors"
    tensors = {
        n.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): v
        for n, v in tensors_of(path).items()
    }
    rewrite(path, tensors, b"")
    check = check_folder(str(folder))
    assert check.ok and any(old.endswith("gamma") for old, _ in check.renamed)


def test_mixtral_in_either_layout(tmp_path: Path) -> None:
    folder = save(tmp_path, "mixtral", shards=False)
    assert check_folder(str(folder)).layout == "checkpoint files"
    fused = t.AutoConfig.for_model("mixtral", **SMALL, num_key_value_heads=2, num_local_experts=3)
    model = t.MixtralForCausalLM(fused)
    from safetensors.torch import save_file

    save_file(
        {
            n: p.detach().contiguous()
            for n, p in model.state_dict().items()
            if n != "lm_head.weight" or not fused.tie_word_embeddings
        },
        str(folder / "model.safetensors"),
    )
    check = check_folder(str(folder))
    assert check.ok and check.layout == "transformers"


def test_a_quantized_checkpoint_is_reported_as_such(tmp_path: Path) -> None:
    folder = save(tmp_path, "llama", shards=False)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "gptq",
        "bits": 4,
        "modules_to_not_convert": ["lm_head"],
    }
    (folder / "config.json").write_text(json.dumps(config))
    path = folder / "model.safetensors"
    tensors = tensors_of(path)
    for name in [n for n in tensors if n.endswith("_proj.weight")]:
        _, shape, _ = tensors.pop(name)
        module = name.removesuffix(".weight")
        tensors[module + ".qweight"] = (
            "I32",
            [shape[1] // 8, shape[0]],
            bytes(shape[0] * shape[1] // 2),
        )
        groups = -(-shape[1] // 128)  # group_size 128, a partial group a whole one
        tensors[module + ".qzeros"] = (
            "I32",
            [groups, shape[0] // 8],
            bytes(groups * shape[0] // 2),
        )
        tensors[module + ".scales"] = ("F16", [groups, shape[0]], bytes(2 * groups * shape[0]))
        tensors[module + ".g_idx"] = ("I32", [shape[1]], bytes(4 * shape[1]))
    rewrite(path, tensors, b"")
    check = check_folder(str(folder))
    assert check.ok, (check.missing, check.unexpected)
    # every stored tensor checked against the GPTQ layout (none merely skipped)
    assert check.layout == "quantized" and not check.quantized
    assert check.notes and "GPTQ" in check.notes[0]
    result = run(["inspect", str(folder)])
    assert result.exit_code == 0 and "quantized" in result.stdout
    assert "int32" in result.stdout  # the stored dtypes, in the title
    hf_result = run(["hf", str(folder), "--format", "json"])
    assert hf_result.exit_code == 0, hf_result.output
    assert "model.layers.{0..1}.self_attn.q_proj.qweight" in hf_result.stdout


def test_a_folder_without_config_is_inspected_whole(tmp_path: Path) -> None:
    folder = damaged(tmp_path)
    (folder / "config.json").unlink()
    report = json.loads(run(["inspect", str(folder), "--format", "json"]).stdout)
    assert "check" not in report and report["total"] > 0


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda f: shutil.rmtree(f) or f.mkdir(), "no weights"),
        (lambda f: (f / "model.safetensors.index.json").write_text("{"), "not a JSON index"),
        (
            lambda f: (f / "model.safetensors.index.json").write_text(
                '{"weight_map": {"a": "../x"}}'
            ),
            "outside the folder",
        ),
        (lambda f: (f / "config.json").write_text('{"model_type": "xlnet"}'), "xlnet"),
    ],
)
def test_unreadable_folders_are_one_line(tmp_path: Path, make: Any, words: str) -> None:
    folder = damaged(tmp_path)
    make(folder)
    result = run(["inspect", str(folder)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr


def test_shards_without_their_index_do_not_load(tmp_path: Path) -> None:
    folder = damaged(tmp_path)
    (folder / "model.safetensors.index.json").unlink()
    check = check_folder(str(folder))
    assert not check.ok and "no model.safetensors.index.json" in check.index_problems[0]
    assert run(["inspect", str(folder)]).exit_code == 1


def test_an_unknown_field_can_be_allowed_and_an_unknown_type_still_lists(tmp_path: Path) -> None:
    folder = damaged(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "new_width": 3}))
    refused = run(["inspect", str(folder)])
    assert refused.exit_code == 2 and "new_width" in refused.stderr
    assert "model" in refused.stdout  # the tensors are listed, unchecked
    assert run(["inspect", str(folder), "--allow-field", "new_width"]).exit_code == 0
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "xlnet"}))
    report = run(["inspect", str(folder), "--format", "json"])
    assert report.exit_code == 2 and "xlnet" in json.loads(report.stdout)["unchecked"]
    validator("inspect").validate(json.loads(report.stdout))


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("config.json", b'{"model_type": "llama"}', "a JSON file, not a checkpoint"),
        ("notes.txt", b"hello there, notes", "neither a safetensors file"),
        ("model.keras", b"PK\x03\x04rest", "Keras 3 archive"),
        ("model.h5", b"\x89HDF\r\n\x1a\nrest", "HDF5"),
    ],
)
def test_files_that_are_no_checkpoint_say_what_they_are(
    tmp_path: Path, name: str, content: bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = run(["inspect", str(path)])
    assert result.exit_code == 2 and words in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "name",
    ["[/bold]", "[red]x[/red]", "[link=http://x]y", "a\x1b[31mRED", "\ud800", "b\x07c"],
)
def test_names_from_files_are_text(tmp_path: Path, name: str) -> None:
    """Tensor names and paths are printed as text: no markup, control characters and lone
    surrogates escaped."""
    folder = tmp_path / "d[bold]"
    folder.mkdir()
    header = json.dumps({name: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
    raw = header.encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
    for target in (str(folder / "model.safetensors"), str(folder)):
        result = run(["inspect", target])
        assert result.exit_code == 0, result.output
        assert "d[bold]" in result.stdout
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
        if name.startswith("["):
            assert name.split("]")[0] + "]" in result.stdout


def test_header_errors_show_names_as_text(tmp_path: Path) -> None:
    header = json.dumps({"a\x1b[2J" * 50: {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}})
    raw = header.encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
    result = run(["inspect", str(path)])
    assert result.exit_code == 2 and "\x1b" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and len(result.stderr) < 400
