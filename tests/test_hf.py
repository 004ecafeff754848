"""``shapecalc hf`` and ``from_hf_config``: configs drawn for every supported model type,
written as ``config.json``, against the class ``transformers`` builds from the same file
on the meta device (every name, every shape, the total); the defaults and known fields
against transformers' config classes; refusals, Hub ids in a local cache, the command."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import COMMON_FREE, declared, from_hf_config, hf_model
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.tree import run_indices
from tests.hf_configs import hf_configs
from tests.test_cli import run
from tests.twins import hf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from docs_facts import LLAMA_31_8B

torch = pytest.importorskip("torch")
t = hf()

FAMILIES = {model_type: t for model_type, (_, t) in declared().items()}
TYPES = sorted(FAMILIES)


def params(module: Any, uncounted: Any = ()) -> list[tuple[str, tuple[int, ...]]]:
    """A module's parameters, those under the prefixes ``uncounted`` left out (a
    multimodal class's vision tower, which shapecalc does not count yet)."""
    return [
        (n, tuple(p.shape))
        for n, p in module.named_parameters()
        if not any(n.startswith(prefix) for prefix in uncounted)
    ]


def counted(module: Any, uncounted: Any = ()) -> int:
    return sum(
        p.numel()
        for n, p in module.named_parameters()
        if not any(n.startswith(prefix) for prefix in uncounted)
    )


def reference(folder: Path, class_name: str) -> Any:
    """The class transformers builds from the folder's config.json, on the meta device."""
    import warnings

    config = t.AutoConfig.from_pretrained(folder)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(t, class_name)(config)


def write(folder: Path, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


# -- drawn configs (tests/hf_configs.py: from the declarations) -----------------------
@pytest.mark.parametrize("model_type", TYPES)
@settings(
    max_examples=int(os.environ.get("SHAPECALC_HF_EXAMPLES", "20")),  # more on demand
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_drawn_configs_equal_what_transformers_builds(
    model_type: str, data: st.DataObject, tmp_path: Path
) -> None:
    config = data.draw(hf_configs(model_type), label="config")
    folder = write(tmp_path / f"m{data.draw(st.integers(0, 10**9))}", config)
    found = hf_model(folder)
    built = reference(folder, found.class_name)
    model = found.model()
    uncounted = model.uncounted
    assert model.named_parameters() == params(built, uncounted)
    assert model.total == counted(built, uncounted)
    # the command says the same: its JSON's tensors, runs expanded, are transformers' own
    report = json.loads(run(["hf", str(folder), "--format", "json"]).stdout)
    listed = [
        (name, tuple(p["shape"]))
        for layer in report["layers"]
        for p in layer["params"]
        if p["tied_to"] is None
        for name in expanded(p["name"])
    ]
    assert sorted(listed) == sorted(params(built, uncounted))
    assert report["total"] == model.total


def expanded(name: str) -> list[str]:
    """``h.{0..2}.w`` as ``h.0.w``, ``h.1.w``, ``h.2.w``, and ``h.{1,3..5}.w`` as ``h.1.w``,
    ``h.3.w``, ``h.5.w`` (every run of a JSON name)."""
    found = re.search(r"\{\d+(?:,\d+)?\.\.\d+\}", name)
    if found is None:
        return [name]
    numbers = run_indices(found.group(0))
    assert numbers is not None, name
    return [
        n for i in numbers for n in expanded(name[: found.start()] + str(i) + name[found.end() :])
    ]


#: types whose config class's defaults alone make a model its forward cannot run, refused
#: naming the field: DeepseekV2Config's num_experts_per_tok is null (its router's top k)
UNRUNNABLE_DEFAULTS = {"deepseek_v2": "num_experts_per_tok"}


def test_every_class_of_every_type_builds_as_transformers_does(tmp_path: Path) -> None:
    """Every class shapecalc names for a model type, from the type's defaults alone (the
    large published sizes, so the defaults are the class's own)."""
    for model_type, family in FAMILIES.items():
        for class_name in family.classes:
            config = {"model_type": model_type, "architectures": [class_name]}
            folder = write(tmp_path / f"{model_type}-{class_name}", config)
            needed = [p.key for p in family.all_parts if not p.optional]
            if needed:  # a model made of several: its language model's config is needed
                with pytest.raises(InvalidArgumentError) as err:
                    from_hf_config(folder)
                assert err.value.field == needed[0]
                continue
            if model_type in UNRUNNABLE_DEFAULTS:  # builds, but its forward cannot run
                with pytest.raises(InvalidArgumentError) as err:
                    from_hf_config(folder)
                assert err.value.field == UNRUNNABLE_DEFAULTS[model_type]
                continue
            model = from_hf_config(folder)
            built = reference(folder, class_name)
            assert model.named_parameters() == params(built, model.uncounted), class_name
            assert model.total == counted(built, model.uncounted), class_name


# -- what the tables hold, against transformers' config classes ----------------------------
@pytest.mark.parametrize("model_type", TYPES)
def test_defaults_are_those_of_the_config_class(model_type: str) -> None:
    """Each default shapecalc holds is the config class's own (its dataclass field's)."""
    import dataclasses

    family = FAMILIES[model_type]
    cls = t.CONFIG_MAPPING[model_type]
    assert cls.__name__ == family.config_class
    declared = {f.name: f.default for f in dataclasses.fields(cls)}
    for key, value in family.defaults.items():
        if key == "partial_rotary_factor":
            actual = t.AutoConfig.for_model(model_type).rope_parameters.get(key, 1.0)
        elif key not in declared:  # read with getattr(config, key, ...) by the modeling file
            assert value is None, key
            continue
        else:
            actual = declared[key]
        assert actual == value, key


@pytest.mark.parametrize("model_type", TYPES)
def test_every_field_of_the_config_class_is_known(model_type: str) -> None:
    family = FAMILIES[model_type]
    known = COMMON_FREE | family.known_fields()
    fields = set(t.AutoConfig.for_model(model_type).to_dict())
    read = {
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "type_vocab_size",
    }
    assert fields - known - read == set()


@pytest.mark.parametrize("model_type", TYPES)
def test_ignored_checkpoint_names_are_transformers_own(model_type: str) -> None:
    """What a checkpoint may hold that transformers drops on load without a word."""
    family = FAMILIES[model_type]
    classes = [getattr(t, name) for name in family.classes]
    own = set()
    for cls in classes:
        own |= set(getattr(cls, "_keys_to_ignore_on_load_unexpected", None) or ())
    config = t.AutoConfig.for_model(model_type)
    model = reference_from(config, classes[0])
    buffers = [name for name, _ in model.named_buffers()]
    if any(name.endswith("rotary_emb.inv_freq") for name in buffers):
        own.add(r"rotary_emb\.inv_freq")
    if any(name.endswith("position_ids") for name in buffers):
        own.add(r"(^|\.)position_ids$")
    assert set(family.dropped) == own


def reference_from(config: Any, cls: Any) -> Any:
    small = {"num_hidden_layers": 1}
    for key, value in small.items():
        setattr(config, key, value)
    with torch.device("meta"):
        return cls(config)


# -- refusals --------------------------------------------------------------------------------
BASE = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 100,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            {"model_type": "no_such_type"},
            "model_type",
            f"shapecalc reads {len(declared())} model types, listed by `shapecalc hf --help`",
        ),
        ({"model_type": "lama"}, "model_type", "(closest: llama"),
        ({"model_type": None}, "model_type", "has no model_type"),
        ({"architectures": ["LlamaForCausalLMWithValueHead"]}, "architectures", "LlamaModel"),
        ({"architectures": "LlamaForCausalLM"}, "architectures", "list of class names"),
        ({"num_attention_heads": 5}, "num_attention_heads", "divide hidden_size"),
        ({"num_attention_heads": 5, "head_dim": 16}, "num_attention_heads", "divide"),
        ({"num_key_value_heads": 3}, "num_key_value_heads", "divide num_attention_heads"),
        ({"hidden_size": "64"}, "hidden_size", "integer >= 1"),
        ({"hidden_size": 64.0}, "hidden_size", "integer >= 1"),
        ({"num_hidden_layers": 0}, "num_hidden_layers", "integer >= 1"),
        ({"vocab_size": True}, "vocab_size", "integer >= 1"),
        ({"tie_word_embeddings": "yes"}, "tie_word_embeddings", "true or false"),
        ({"hidden_act": "wiggle"}, "hidden_act", "activation transformers knows"),
        ({"hidden_size": 60, "num_attention_heads": 4}, "num_attention_heads", "60 / 4 = 15"),
        ({"head_dim": 15}, "head_dim", "must be even"),
        ({"pad_token_id": 100}, "pad_token_id", "padding_idx"),
        ({"sliding_attention_kind": "new"}, "sliding_attention_kind", "could change a shape"),
        (
            {"quantization_config": {"quant_method": "hqq", "nbits": 4}},
            "quantization_config",
            "inspect FOLDER",
        ),
        (
            {"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 1.5}},
            "partial_rotary_factor",
            "number in [0, 1]",
        ),
        ({"rope_parameters": "linear"}, "rope_parameters", "object or null"),
    ],
)
def test_refusals_name_the_field(change: dict[str, Any], field: str, words: str) -> None:
    config = {**BASE, **change}
    with pytest.raises(InvalidArgumentError) as caught:
        hf_model(config)
    assert caught.value.field == field
    assert words in str(caught.value)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "mixtral", "num_local_experts": 2, "num_experts_per_tok": 3},
        {"model_type": "gpt2", "add_cross_attention": True},
        {"model_type": "bert", "position_embedding_type": "relative_key"},
        {"model_type": "roberta", "max_position_embeddings": 2},
        {"model_type": "gpt_neox", "hidden_size": 64, "num_attention_heads": 4, "head_dim": 8},
        {"model_type": "phi3"},  # pad_token_id 32000 with a vocabulary of 100
    ],
)
def test_family_rules_are_refused(config: dict[str, Any]) -> None:
    full = {"vocab_size": 100, **config}
    with pytest.raises(InvalidArgumentError):
        hf_model(full)


def test_allowed_fields_are_counted_without() -> None:
    config = {**BASE, "my_new_field": 3}
    with pytest.raises(InvalidArgumentError):
        hf_model(config)
    assert hf_model(config, allow=["my_new_field"]).model().total == from_hf_config(BASE).total


def test_a_transformers_config_object_and_a_dict_agree() -> None:
    config = t.LlamaConfig(**{k: v for k, v in BASE.items() if k != "model_type"})
    assert from_hf_config(config).named_parameters() == from_hf_config(BASE).named_parameters()


def test_misuse_raises_type_errors() -> None:
    with pytest.raises(TypeError, match="source"):
        from_hf_config(3)
    with pytest.raises(TypeError, match="allow"):
        from_hf_config(BASE, allow="field")


# -- where a config comes from ---------------------------------------------------------------
def cached(tmp_path: Path, hub_id: str, config: dict[str, Any], commit: str = "abc123") -> Path:
    """A Hub id laid out as huggingface_hub caches it."""
    cache = tmp_path / "hub"
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    write(repo / "snapshots" / commit, config)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return cache


def test_a_hub_id_is_read_from_the_local_cache(tmp_path: Path, monkeypatch: Any) -> None:
    cache = cached(tmp_path, "acme/tiny-llama", BASE)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert from_hf_config("acme/tiny-llama").total == from_hf_config(BASE).total
    assert from_hf_config("acme/tiny-llama@abc123").total == from_hf_config(BASE).total
    with pytest.raises(InvalidArgumentError, match="never downloads"):
        from_hf_config("acme/other-model")
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert from_hf_config("acme/tiny-llama").total == from_hf_config(BASE).total


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not a JSON config"),
        (b"[1, 2]", "JSON object, not a list"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "not a JSON config"),
    ],
)
def test_bad_files_are_one_line(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    result = run(["hf", str(path)])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr


# -- the command -----------------------------------------------------------------------------
def test_the_command_prints_verifies_and_explains(tmp_path: Path) -> None:
    folder = write(tmp_path / "m", {**BASE, "num_key_value_heads": 2})
    result = run(
        [
            "hf",
            str(folder),
            "--verify",
            "--explain",
            "--all",
            "--seq-len",
            "16",
            "--dtype",
            "bf16",
            "--training",
            "adamw",
        ],
        200,
    )
    assert result.exit_code == 0, result.output
    assert "LlamaForCausalLM" in result.stdout and "What the sizes mean" in result.stdout
    assert "Verified against transformers" in result.stderr and "LlamaForCausalLM" in result.stderr
    report = json.loads(run(["hf", str(folder), "--format", "json", "--memory"]).stdout)
    assert report["total"] == from_hf_config(folder).total
    for fmt in ("markdown", "latex", "tree"):
        assert run(["hf", str(folder), "--format", fmt]).exit_code == 0


def test_the_command_builds_another_class_when_asked(tmp_path: Path) -> None:
    folder = write(tmp_path / "m", BASE)
    body = json.loads(run(["hf", str(folder), "--class", "LlamaModel", "--format", "json"]).stdout)
    names = [r["name"] for r in body["parameters"]] if "parameters" in body else []
    assert body["total"] == from_hf_config(BASE).total - 100 * 64
    assert not any(n.startswith("model.") for n in names)
    wrong = run(["hf", str(folder), "--class", "GPT2Model"])
    assert wrong.exit_code == 2 and "'--class'" in wrong.stderr


@pytest.mark.parametrize(
    "args",
    [["hf", "/no/such/place"], ["hf", "not a hub id"], ["hf"]],
)
def test_wrong_paths_are_one_line(args: list[str]) -> None:
    result = run(args)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")


def test_an_unknown_field_names_the_way_out(tmp_path: Path) -> None:
    folder = write(tmp_path / "m", {**BASE, "attention_sinks": 4})
    result = run(["hf", str(folder)])
    assert result.exit_code == 2 and "attention_sinks" in result.stderr
    allowed = run(["hf", str(folder), "--allow-field", "attention_sinks"])
    assert allowed.exit_code == 0, allowed.output


def test_published_configs(tmp_path: Path) -> None:
    """Configs as their Hub repositories hold them (transformers 4's spelling), against
    their published totals."""
    llama3 = LLAMA_31_8B  # as its Hub repository holds it (the docs count it too)
    assert from_hf_config(llama3).total == 8_030_261_248
    gpt2 = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": 1024,
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 12,
        "n_positions": 1024,
        "resid_pdrop": 0.1,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": 50257,
    }
    assert from_hf_config(gpt2).total == 124_439_808
    pythia = {
        "architectures": ["GPTNeoXForCausalLM"],
        "bos_token_id": 0,
        "eos_token_id": 0,
        "hidden_act": "gelu",
        "hidden_size": 512,
        "initializer_range": 0.02,
        "intermediate_size": 2048,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 2048,
        "model_type": "gpt_neox",
        "num_attention_heads": 8,
        "num_hidden_layers": 6,
        "rotary_emb_base": 10000,
        "rotary_pct": 0.25,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "transformers_version": "4.24.0",
        "use_cache": True,
        "use_parallel_residual": True,
        "vocab_size": 50304,
    }
    assert from_hf_config(pythia).total == 70_426_624
    bert = {
        "architectures": ["BertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "model_type": "bert",
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "transformers_version": "4.6.0.dev0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": 30522,
    }
    assert from_hf_config(bert).total == 109_514_298
    assert re.match(r"BertForMaskedLM", from_hf_config(bert).name)
    assert os.path.exists(tmp_path)


# -- what a newcomer's trial found --------------------------------------------------------------
def test_a_false_flag_of_another_family_member_passes() -> None:
    qwen = {
        "model_type": "qwen2",
        "vocab_size": 100,
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 32,
        "use_mrope": False,
    }
    assert from_hf_config(qwen).total > 0


def test_huge_sizes_are_exact() -> None:
    h, a, v, i, layers = 2**61, 2**20, 10**18, 3 * 2**60, 3  # past a float's 2^53
    model = from_hf_config(
        {
            **BASE,
            "hidden_size": h,
            "num_attention_heads": a,
            "vocab_size": v,
            "intermediate_size": i,
            "num_hidden_layers": layers,
        }
    )
    assert model.total == 4 * layers * h * h + 3 * layers * h * i + 2 * layers * h + 2 * v * h + h
    for huge in (2**63, 10**5000):
        with pytest.raises(InvalidArgumentError, match=r"< 2\^63|5,000 digits") as caught:
            hf_model({**BASE, "hidden_size": huge})
        assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": ["llama"]},
        {"model_type": {"a": 1}},
        {"model_type": 10**5000},
        {**BASE, "x" * 5000: 1, "b\nc": 2},
        {**BASE, "architectures": ["y" * 5000]},
        {**BASE, "quantization_config": {"quant_method": "q" * 5000}},
        {**BASE, "max_position_embeddings": "long"},
        {**BASE, "layer_types": "sliding"},
        {**BASE, "hidden_act": None},
        {**BASE, "model_type": "gemma2", "num_key_value_heads": None},
    ],
)
def test_hostile_values_are_one_short_line(config: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        hf_model(config)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 400, text


def test_two_spellings_of_one_field() -> None:
    gpt2 = {"model_type": "gpt2", "n_embd": 64, "n_head": 7, "vocab_size": 10}
    with pytest.raises(InvalidArgumentError, match=r"n_head = 7: n_head must divide n_embd"):
        hf_model(gpt2)
    with pytest.raises(InvalidArgumentError, match="disagree"):
        hf_model({**gpt2, "n_head": 4, "num_attention_heads": 8})
    assert hf_model({**gpt2, "n_head": 4, "num_attention_heads": 4}).model().total > 0


def test_wording_of_a_missing_type_and_an_absent_allowed_field() -> None:
    with pytest.raises(InvalidArgumentError, match="has no model_type; shapecalc reads"):
        hf_model({})
    with pytest.raises(InvalidArgumentError, match='the config has no field "nope"'):
        hf_model(BASE, allow=["nope"])


def test_explain_names_the_config_fields(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "phi",
        {**BASE, "model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "pad_token_id": 0},
    )
    text = run(["hf", str(folder), "--explain"], 200).stdout
    assert "(hidden_size)" in text and "(--hidden)" not in text
    assert "qkv_proj" in text and "k_proj and v_proj" not in text
    assert "(num_local_experts)" not in text  # a dense model's legend has no experts


def test_a_sliding_window_is_said_of_the_kv_cache() -> None:
    mistral = {
        **BASE,
        "model_type": "mistral",
        "architectures": ["MistralForCausalLM"],
        "num_key_value_heads": 2,
    }
    notes = hf_model(mistral).model().notes
    assert any("sliding_window 4,096: 2 of the 2 layers (all)" in n for n in notes)
    gemma2 = {
        **BASE,
        "model_type": "gemma2",
        "architectures": ["Gemma2ForCausalLM"],
        "num_key_value_heads": 2,
        "head_dim": 16,
        "num_hidden_layers": 3,
    }
    assert any("2 of the 3 layers (0, 2)" in n for n in hf_model(gemma2).model().notes)
    assert not any("sliding" in n for n in from_hf_config(BASE).notes)


def test_a_hub_id_without_an_owner(tmp_path: Path, monkeypatch: Any) -> None:
    cache = cached(tmp_path, "gpt2", {"model_type": "gpt2"})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert from_hf_config("gpt2").total == 124_439_808
    result = run(["hf", "gpt3"])
    assert result.exit_code == 2 and "no such file or folder" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["llama", "--vocab", "10", "--hidden", "8", "--heads", "2", "--layers", "100000"],
        ["gpt2", "--vocab", str(2**63 - 1), "--hidden", "8", "--heads", "2", "--layers", "1"],
    ],
)
def test_verify_refuses_what_torch_cannot_build_at_once(args: list[str]) -> None:
    result = run([*args, "--verify"])
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "'--verify'" in result.stderr
