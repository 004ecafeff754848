"""LoRA and DoRA against peft itself: ``get_peft_model`` on transformers' models on the
meta device, for drawn ranks and targets; every tensor's name, shape and trainability,
and ``get_nb_trainable_parameters`` (what ``print_trainable_parameters`` prints)."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapt import LoraConfig, lora
from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

LLAMA = {
    "model_type": "llama",
    "hidden_size": 16,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 24,
    "vocab_size": 50,
}
GPT2 = {
    "model_type": "gpt2",
    "n_embd": 16,
    "n_layer": 2,
    "n_head": 2,
    "vocab_size": 50,
    "n_positions": 32,
}
MOE = {
    "model_type": "qwen2_moe",
    "hidden_size": 16,
    "intermediate_size": 24,
    "moe_intermediate_size": 8,
    "shared_expert_intermediate_size": 12,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 50,
    "num_experts": 4,
    "num_experts_per_tok": 2,
}
CONFIGS = {"llama": LLAMA, "gpt2": GPT2, "qwen2_moe": MOE}
#: per family, targets as a user writes them: names, a regular expression, all-linear
TARGETS: dict[str, list[Any]] = {
    "llama": [
        "all-linear",
        ("q_proj", "v_proj"),
        ("down_proj",),
        ("self_attn.o_proj", "gate_proj", "up_proj"),
        r".*\.(q|k)_proj",
        ("embed_tokens", "q_proj"),
        ("lm_head",),
    ],
    "gpt2": ["all-linear", ("c_attn",), ("c_fc", "mlp.c_proj"), ("wte", "c_attn")],
    "qwen2_moe": [
        "all-linear",
        ("q_proj", "shared_expert_gate"),
        r".*shared_expert\..*",
        ("o_proj",),
    ],
}
SAVED = {"llama": ["lm_head", "norm"], "gpt2": ["ln_f"], "qwen2_moe": ["lm_head", "norm"]}


def _model_of(config: dict[str, Any]) -> Any:
    cfg = transformers.AutoConfig.for_model(**config)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(cfg)


def _peft(
    config: dict[str, Any], lc: LoraConfig
) -> tuple[list[tuple[str, tuple[int, ...], bool]], tuple[int, int]]:
    model = _model_of(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = peft.get_peft_model(model, peft.LoraConfig(**lc.peft_kwargs()))
    names = [(n, tuple(p.shape), p.requires_grad) for n, p in wrapped.named_parameters()]
    return names, wrapped.get_nb_trainable_parameters()


def _ours(
    config: dict[str, Any], lc: LoraConfig
) -> tuple[list[tuple[str, tuple[int, ...], bool]], tuple[int, int]]:
    adapted = lora(from_hf_config(config), lc)
    patterns = [
        (re.compile(re.sub(r"\\\{[^}]*\\\}", r"\\d+", re.escape(r.name))), r.param.trainable)
        for r in adapted.rows()
        if not r.tied_to
    ]
    names = [
        (n, tuple(s), next(t for p, t in patterns if p.fullmatch(n)))
        for n, s in adapted.named_parameters()
    ]
    return names, (adapted.trainable, adapted.parameters)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, LoraConfig]:
    family = draw(st.sampled_from(sorted(CONFIGS)))
    targets = draw(st.sampled_from(TARGETS[family]))
    embedding = not isinstance(targets, str) and any(t in ("embed_tokens", "wte") for t in targets)
    bias = not embedding and draw(st.booleans())
    dora = not bias and draw(st.booleans())
    saved = draw(st.sampled_from([(), *[(s,) for s in SAVED[family]]]))
    if family == "llama" and not isinstance(targets, str) and "lm_head" in targets:
        saved = ()
    return family, LoraConfig(
        r=draw(st.integers(1, 8)),
        targets=targets,
        alpha=draw(st.sampled_from([8, 16, 32.0])),
        bias=bias,
        dora=dora,
        modules_to_save=saved,
    )


@settings(max_examples=15, deadline=None)
@given(cases())
def test_lora_matches_peft(case: tuple[str, LoraConfig]) -> None:
    family, lc = case
    config = CONFIGS[family]
    try:
        theirs, their_counts = _peft(config, lc)
    except ValueError as err:  # a regular expression matching an activation module
        assert "is not supported" in str(err)
        with pytest.raises(InvalidArgumentError, match="LoRA cannot adapt"):
            _ours(config, lc)
        return
    ours, our_counts = _ours(config, lc)
    assert ours == theirs
    assert our_counts == their_counts


@pytest.mark.parametrize(
    ("family", "lc"),
    [
        ("llama", LoraConfig(r=3, targets=("embed_tokens", "q_proj"), dora=True)),
        ("gpt2", LoraConfig(r=2, targets="all-linear", dora=True)),
        ("gpt2", LoraConfig(r=2, targets=("wte",), dora=True)),
        (
            "qwen2_moe",
            LoraConfig(
                r=2, targets=r".*\.mlp\.shared_expert\..*_proj", modules_to_save=("lm_head",)
            ),
        ),
    ],
)
def test_embeddings_conv1d_and_dora_match_peft(family: str, lc: LoraConfig) -> None:
    """An embedding's lora_embedding_A/B and DoRA vector, GPT-2's Conv1D with DoRA
    (fan_in_fan_out), a regular expression with a module saved whole."""
    assert _ours(CONFIGS[family], lc) == _peft(CONFIGS[family], lc)


def test_formula_is_the_count() -> None:
    """The symbolic template's trainable count, evaluated, is the concrete one; r is a
    letter of it."""
    adapted = lora(from_hf_config(LLAMA), LoraConfig(r=4, targets="all-linear"))
    formula = adapted.template.trainable
    assert "r" in str(formula)
    assert formula.subs(dict(adapted.sizes)) == adapted.trainable


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"r": 4, "targets": ("nope",)}, "lora_targets", "q_proj, k_proj, v_proj"),
        ({"r": 0, "targets": "all-linear"}, "lora_rank", "r must be an integer > 0"),
        ({"r": -2, "targets": "all-linear"}, "lora_rank", "r must be an integer > 0"),
        ({"r": 4, "targets": ("input_layernorm",)}, "lora_targets", "is not supported"),
        ({"r": 4, "targets": "(["}, "lora_targets", "not a regular expression"),
        ({"r": 4, "targets": "all-linear", "bias": True, "dora": True}, "lora_bias", "DoRA"),
    ],
)
def test_refused(kwargs: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ShapecalcError) as info:
        lora(from_hf_config(LLAMA), LoraConfig(**kwargs))
    assert info.value.field == field
    assert text in str(info.value)
    assert "\n" not in str(info.value)


def test_peft_refuses_what_we_refuse() -> None:
    """A target no module has: peft's own error, and ours names the modules there are."""
    with pytest.raises(ValueError, match="not found in the base model"):
        _peft(LLAMA, LoraConfig(r=4, targets=("nope",)))
    with pytest.raises(ValueError, match="positive integer"):
        peft.get_peft_model(_model_of(LLAMA), peft.LoraConfig(r=0, target_modules=["q_proj"]))


# -- what autograd keeps: a LoRA forward of the model shapecalc builds, with peft on CPU ----
def _kept(module: Any, inputs: list[Any]) -> int:
    """Bytes of the tensors the backward graph holds after one training forward, once per
    storage, parameters excluded. A tensor saved by a graph that is freed before the
    backward (DoRA's update matrix, lora_B(lora_A(I)), used detached) is not held: only
    the tensors still alive after the forward count."""
    import gc
    import weakref

    own = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    refs: list[Any] = []

    def pack(tensor: Any) -> Any:
        refs.append(weakref.ref(tensor))
        return tensor

    module.train()
    with (
        warnings.catch_warnings(),
        torch.backends.mkldnn.flags(enabled=False),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
    ):
        warnings.simplefilter("ignore")
        out = module(*inputs)
    gc.collect()
    seen: dict[int, int] = {}
    for ref in refs:
        tensor = ref()
        if tensor is not None:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in own and storage.nbytes():
                seen[storage.data_ptr()] = storage.nbytes()
    del out
    return sum(seen.values())


ATTENTION = ("q_proj", "k_proj", "v_proj")


@settings(max_examples=6, deadline=None)
@given(
    targets=st.sampled_from(
        [
            ("q_proj", "v_proj"),
            (*ATTENTION, "o_proj", "gate_proj", "up_proj", "down_proj"),
            ("k_proj", "down_proj"),
        ]
    ),
    dora=st.booleans(),
    r=st.integers(1, 6),
    batch=st.integers(1, 3),
    seq_len=st.integers(2, 9),
)
def test_kept_tensors_equal_autograd_with_peft(
    targets: tuple[str, ...], dora: bool, r: int, batch: int, seq_len: int
) -> None:
    """The activations counted for a LoRA model are what autograd keeps with peft's
    adapters on the frozen model, but for the first block's tensors ahead of its first
    adapter: no gradient flows there (the input, the embedding and that norm are frozen),
    and autograd keeps nothing, where shapecalc, which counts a block once for all its
    copies, counts the first block as the others: its first RMSNorm's input and 1/rms,
    and DoRA's (m/‖·‖ − 1) of each adapted q, k, v (their input needs no gradient)."""
    from shapecalc.adapters.torch_bridge import build
    from shapecalc.analysis.cost import analyze

    model = from_hf_config(LLAMA)
    lc = LoraConfig(r=r, targets=targets, dora=dora)
    module = build(model, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = peft.get_peft_model(module, peft.LoraConfig(**lc.peft_kwargs()))
    real = _kept(wrapped, [torch.randint(2, 40, (batch, seq_len))])
    ours = analyze(lora(model, lc), batch=batch, seq_len=seq_len).activation_bytes
    rows, hidden = batch * seq_len, LLAMA["hidden_size"]
    ahead = rows * hidden * 4 + rows * 4  # block 0's input_layernorm: input, 1/rms
    outs = {"q_proj": 16, "k_proj": 8, "v_proj": 8}
    if dora:
        ahead += sum(4 * outs[t] for t in targets if t in outs)
    assert ours - real == ahead


# -- 8-bit optimizers: the state bitsandbytes allocates in a real step on CPU -------------
@pytest.mark.parametrize("optimizer", ["adamw-8bit", "paged-adamw-8bit"])
@pytest.mark.parametrize("r", [4, 40])
def test_eight_bit_state_equals_bitsandbytes(optimizer: str, r: int) -> None:
    """Every state tensor of bitsandbytes' AdamW8bit / PagedAdamW8bit after one step on
    the trainable tensors of a peft model (the maps shared by every tensor, counted
    once), against the memory account's optimizer state line."""
    bnb = pytest.importorskip("bitsandbytes")
    from shapecalc.analysis.cost import analyze

    config = {**LLAMA, "hidden_size": 96, "intermediate_size": 200, "vocab_size": 60}
    lc = LoraConfig(r=r, targets="all-linear", modules_to_save=("lm_head",))
    model = transformers.AutoModelForCausalLM.from_config(
        transformers.AutoConfig.for_model(**config)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = peft.get_peft_model(model, peft.LoraConfig(**lc.peft_kwargs()))
    trained = [p for p in wrapped.parameters() if p.requires_grad]
    cls = {"adamw-8bit": bnb.optim.AdamW8bit, "paged-adamw-8bit": bnb.optim.PagedAdamW8bit}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # paged memory falls back to plain on CPU
        opt = cls[optimizer](trained, lr=1e-3)
        for p in trained:
            p.grad = torch.randn_like(p)
        opt.step()
    storages: dict[int, int] = {}
    for p in trained:
        for value in opt.state[p].values():
            if torch.is_tensor(value):
                storages[value.untyped_storage().data_ptr()] = value.untyped_storage().nbytes()
    real = sum(storages.values())
    cost = analyze(lora(from_hf_config(config), lc), batch=1, seq_len=4, training=optimizer)
    line = next(m for m in cost.memory if m.label == "optimizer state")
    assert line.bytes == real
    sizes = {p.numel() for p in trained}
    assert min(sizes) < 4096 <= max(sizes)  # both kinds of state in the one step


def test_eight_bit_needs_numbers() -> None:
    from shapecalc.analysis.cost import analyze

    model = lora(from_hf_config(LLAMA), LoraConfig(r=4, targets="all-linear")).template
    with pytest.raises(ShapecalcError, match="give every size a number"):
        analyze(model, training="adamw-8bit")


# -- the command line ---------------------------------------------------------------------
LLAMA_FLAGS = [
    "llama",
    "--vocab",
    "100",
    "--hidden",
    "64",
    "--layers",
    "2",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--intermediate",
    "96",
]


def _cli(args: list[str], width: int) -> Any:
    from click.testing import CliRunner

    from shapecalc.cli import cli

    env = {"COLUMNS": str(width), "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}
    return CliRunner().invoke(cli, args, env=env, prog_name="shapecalc")


@pytest.mark.parametrize("width", [80, 200])
def test_cli_lora_fits_the_terminal(width: int) -> None:
    args = [
        *LLAMA_FLAGS,
        "--lora-rank",
        "8",
        "--lora-alpha",
        "16",
        "--lora-targets",
        "all-linear",
        "--use-dora",
        "--all",
        "--batch",
        "1",
        "--seq-len",
        "32",
        "--training",
        "adamw-8bit",
        "--depth",
        "9",
    ]
    result = _cli(args, width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.stdout.splitlines())
    assert "lora_magnitude_vector" in result.stdout  # the name wraps at 80 columns
    assert "alpha=16" in result.stdout
    adapted = lora(
        from_hf_config({**LLAMA, "hidden_size": 64, "vocab_size": 100, "intermediate_size": 96}),
        LoraConfig(r=8, targets="all-linear", dora=True),
    )
    assert f"{adapted.trainable:,}" in result.stdout


def test_cli_json_and_hf(tmp_path: Any) -> None:
    import json

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA, "architectures": ["LlamaForCausalLM"]}))
    result = _cli(
        [
            "hf",
            str(path),
            "--lora-rank",
            "4",
            "--lora-targets",
            "q_proj,v_proj",
            "--modules-to-save",
            "lm_head",
            "--format",
            "json",
        ],
        100,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    text = json.dumps(data)
    assert "base_model.model.lm_head.modules_to_save.default.weight" in text
    _, counts = _peft(
        LLAMA, LoraConfig(r=4, targets=("q_proj", "v_proj"), modules_to_save=("lm_head",))
    )
    assert str(counts[0]) in text


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--lora-rank", "4", "--lora-targets", "nope"], "--lora-targets"),
        (["--lora-rank", "0", "--lora-targets", "q_proj"], "--lora-rank"),
        (["--lora-rank", "-1", "--lora-targets", "q_proj"], "--lora-rank"),
        (["--lora-alpha", "16"], "--lora-alpha"),
        (["--use-dora"], "--use-dora"),
        (["--lora-rank", "4", "--lora-targets", "re:("], "--lora-targets"),
        (["--lora-rank", "4", "--lora-targets", "norm"], "--lora-targets"),
        (
            ["--lora-rank", "4", "--lora-targets", "all-linear", "--use-dora", "--lora-bias"],
            "--lora-bias",
        ),
    ],
)
def test_cli_refuses_in_one_line(extra: list[str], flag: str) -> None:
    result = _cli([*LLAMA_FLAGS, *extra], 80)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert flag in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_llama_8b_qlora_counts_are_peft_s() -> None:
    """docs/howto/lora.md's example: Llama-3.1-8B, r=16 on every linear layer, with peft
    on the meta device (a 4-bit base counts the same: peft counts a Params4bit's
    numbers, ``peft_model.get_nb_trainable_parameters``)."""
    config = {
        **LLAMA,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_hidden_layers": 32,
        "intermediate_size": 14336,
        "vocab_size": 128256,
    }
    lc = LoraConfig(r=16, alpha=32, targets="all-linear")
    _, counts = _peft(config, lc)
    adapted = lora(from_hf_config(config), lc)
    assert counts == (adapted.trainable, adapted.parameters) == (41_943_040, 8_072_204_288)


@pytest.mark.parametrize(
    ("targets", "dora", "options"),
    [
        ("all-linear", False, {"bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}),
        (("q_proj", "v_proj"), True, {"bnb_4bit_quant_type": "nf4"}),
        (("down_proj",), False, {"bnb_4bit_quant_type": "fp4"}),
    ],
)
def test_qlora_on_a_bitsandbytes_base(targets: Any, dora: bool, options: dict[str, Any]) -> None:
    """QLoRA: peft's adapters on a model transformers quantized with bitsandbytes on CPU
    (lora.bnb.Linear4bit around Linear4bit): every tensor of its state dict, the 4-bit
    base's packed weight, absmax and quantization state under ``base_layer.``, named and
    shaped as shapecalc lists them, and the counts peft prints."""
    pytest.importorskip("bitsandbytes")
    from shapecalc.quant import from_config, quantize
    from tests.quant_truth import bnb_transformers, rows, tensors
    from tests.test_quant_bnb import _offset_free

    raw = {**LLAMA, "hidden_size": 64, "intermediate_size": 96, "vocab_size": 100}
    config = transformers.LlamaConfig(**{k: v for k, v in raw.items() if k != "model_type"})
    quantization = transformers.BitsAndBytesConfig(load_in_4bit=True, **options)
    lc = LoraConfig(r=4, targets=targets, dora=dora)
    made: list[Any] = []

    def wrap(model: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made.append(peft.get_peft_model(model, peft.LoraConfig(**lc.peft_kwargs())))
        return made[0]

    state = bnb_transformers(transformers.LlamaForCausalLM, config, quantization, wrap)
    saved = quantization.to_dict()
    saved["quant_method"] = "bitsandbytes"
    saved.pop("bnb_4bit_compute_dtype")
    base = from_hf_config({**raw, "architectures": ["LlamaForCausalLM"]})
    adapted = lora(quantize(base, from_config(saved)), lc)
    # the JSON quantization state's length as test_quant_bnb prices it (the double
    # quantization's offset is a float printed at its own length)
    theirs = [(n, s) for n, s, _, _ in _offset_free(state, tensors(state), options)]
    ours = [(n, s) for n, s, _, _ in rows(adapted)]
    assert ours == theirs
    assert made[0].get_nb_trainable_parameters() == (adapted.trainable, adapted.parameters)


@pytest.mark.parametrize("training", ["adamw", "adamw-8bit", "paged-adamw-8bit"])
def test_json_report_validates(training: str) -> None:
    """A LoRA report with every section, as JSON, against docs/schema/report.schema.json."""
    import json
    from pathlib import Path

    jsonschema = pytest.importorskip("jsonschema")
    schema_path = Path(__file__).resolve().parent.parent / "docs" / "schema"
    schema = json.loads((schema_path / "report.schema.json").read_text(encoding="utf-8"))
    args = [*LLAMA_FLAGS, "--lora-rank", "4", "--lora-targets", "all-linear", "--use-dora",
            "--modules-to-save", "lm_head", "--weights", "nf4", "--dtype", "bf16", "--all",
            "--batch", "1", "--seq-len", "8", "--training", training, "--explain",
            "--format", "json"]  # fmt: skip
    result = _cli(args, 100)
    assert result.exit_code == 0, result.output
    jsonschema.Draft202012Validator(schema).validate(json.loads(result.stdout))


@pytest.mark.parametrize("name", ["vit_b_16", "swin_t"])
def test_a_module_holding_linear_layers_inside_is_refused(name: str) -> None:
    """torch's MultiheadAttention holds out_proj (an nn.Linear subclass) and torchvision's
    Swin its qkv, proj and reduction: peft's all-linear adapts them, shapecalc does not
    model that yet, so it refuses in one line rather than count fewer adapters."""
    from click.testing import CliRunner

    from shapecalc.cli.app import cli

    result = CliRunner().invoke(
        cli,
        ["torchvision", name, "--lora-rank", "8", "--lora-targets", "all-linear"],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1
    assert "holds nn.Linear modules of its own" in result.stderr


def test_all_linear_adapts_a_torchvision_classifier_s_head() -> None:
    """peft leaves out only a PreTrainedModel's output embeddings: resnet50's fc is
    adapted, 8·(2048 + 1000) numbers."""
    from click.testing import CliRunner

    from shapecalc.cli.app import cli

    result = CliRunner().invoke(
        cli,
        ["torchvision", "resnet50", "--lora-rank", "8", "--lora-targets", "all-linear"],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    assert f"Trainable  {8 * (2048 + 1000):,}" in result.stdout


def test_a_regular_expression_matching_an_activation_is_refused_as_peft_refuses() -> None:
    """``.*shared_expert\\..*`` matches the shared expert's act_fn too, which peft refuses
    ('Target module SiLUActivation() is not supported'): shapecalc refuses it in one
    line, as it would give counts for a configuration peft cannot build."""
    lc = LoraConfig(r=1, targets=r".*shared_expert\..*", alpha=8)
    with pytest.raises(ValueError, match="is not supported"):
        _peft(CONFIGS["qwen2_moe"], lc)
    with pytest.raises(InvalidArgumentError, match="act_fn, the MLP's activation module"):
        _ours(CONFIGS["qwen2_moe"], lc)


@pytest.mark.parametrize(
    "lc",
    [
        LoraConfig(r=4, targets="all-linear"),
        LoraConfig(r=4, targets=("q_proj", "embed_tokens"), modules_to_save=("lm_head",)),
        LoraConfig(r=4, targets=("q_proj", "v_proj"), dora=True),
    ],
)
def test_adapters_are_float32_as_peft_keeps_them(lc: LoraConfig) -> None:
    """peft's get_peft_model (autocast_adapter_dtype=True, its default) keeps a bf16
    model's adapters in float32 (modules_to_save's copy in the model's dtype): the weights,
    gradients and Adam state lines equal the bytes of the real tensors, and of their
    gradients and Adam's two states, which take each tensor's dtype."""
    from shapecalc.analysis.cost import analyze

    model = transformers.AutoModelForCausalLM.from_config(
        transformers.AutoConfig.for_model(**LLAMA), dtype=torch.bfloat16
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = peft.get_peft_model(model, peft.LoraConfig(**lc.peft_kwargs()))
    every = sum(p.numel() * p.element_size() for p in wrapped.parameters())
    trained = sum(p.numel() * p.element_size() for p in wrapped.parameters() if p.requires_grad)
    cost = analyze(lora(from_hf_config(LLAMA), lc), batch=1, seq_len=4, dtype="bf16")
    lines = {m.label: m.bytes for m in cost.memory}
    assert lines["weights"] == every
    assert lines["gradients"] == trained
    assert lines["optimizer state"] == 2 * trained


# -- fused mixtures: peft converts the targets (shapecalc/adapt/lora_moe.py) -------------
MIXTRAL = {
    "model_type": "mixtral",
    "vocab_size": 50,
    "hidden_size": 16,
    "intermediate_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
}
QWEN3_MOE = {
    **{k: v for k, v in MIXTRAL.items() if k != "num_local_experts"},
    "model_type": "qwen3_moe",
    "moe_intermediate_size": 8,
    "num_experts": 4,
    "head_dim": 8,
    "mlp_only_layers": [0],
}
DEEPSEEK_V3 = {
    "model_type": "deepseek_v3",
    "vocab_size": 50,
    "hidden_size": 16,
    "intermediate_size": 24,
    "moe_intermediate_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "n_routed_experts": 4,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "first_k_dense_replace": 1,
    "q_lora_rank": 8,
    "kv_lora_rank": 8,
    "qk_rope_head_dim": 4,
    "qk_nope_head_dim": 4,
    "v_head_dim": 4,
    "n_group": 1,
    "topk_group": 1,
}
MOE_TARGETS: list[Any] = [
    "all-linear",
    ("q_proj", "v_proj", "gate"),
    ("w1", "w3", "w2"),
    ("w1",),
    ("gate_proj", "up_proj"),
    ("down_proj",),
    r".*experts.*",
    r".*mlp\.gate",
    ("o_proj",),
]


@pytest.mark.parametrize("targets", MOE_TARGETS)
@pytest.mark.parametrize("config", [MIXTRAL, QWEN3_MOE, DEEPSEEK_V3], ids=lambda c: c["model_type"])
def test_fused_mixtures_as_peft_converts_them(config: dict[str, Any], targets: Any) -> None:
    """peft 0.21 converts the targets of a transformers 5 mixture (all-linear and the
    transformers 4 names of the experts and router become parameter targets, a fused pair
    at twice the rank): every name, shape and trainable flag, and the counts, are peft's,
    or both refuse (half a fused pair; a regular expression reaching the experts' act_fn)."""
    lc = LoraConfig(r=4, targets=targets)
    try:
        theirs: Any = _peft(config, lc)
    except (ValueError, TypeError):
        with pytest.raises(InvalidArgumentError):
            _ours(config, lc)
        return
    assert _ours(config, lc) == theirs


def test_a_mixture_s_wrapped_parameters_keep_what_autograd_keeps() -> None:
    """Each parameter peft wraps adds what autograd then keeps: the merged weight and the
    product's input. Against a real CPU forward of transformers' Mixtral with peft, the
    difference from shapecalc's activations is the same whatever is wrapped (the part
    shapecalc counts for the frozen layers, which wrapping does not change)."""
    from shapecalc.analysis.cost import analyze

    config = {**MIXTRAL, "num_hidden_layers": 1}
    gaps = set()
    every = ("q_proj", "w1", "w3", "w2", "gate")  # q_proj first: the same block 0 ahead
    for targets in [("q_proj",), ("q_proj", "gate"), ("q_proj", "w2"), every]:
        lc = LoraConfig(r=4, targets=targets)
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model(**config)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wrapped = peft.get_peft_model(model, peft.LoraConfig(**lc.peft_kwargs()))
        real = _kept(wrapped, [torch.randint(2, 40, (1, 5))])
        ours = analyze(lora(from_hf_config(config), lc), batch=1, seq_len=5).activation_bytes
        gaps.add(ours - real)
    assert len(gaps) == 1


@pytest.mark.parametrize(
    ("targets", "weights"), [("q_proj,v_proj", None), ("all-linear", None), ("all-linear", "nf4")]
)
def test_fit_training_with_an_adapter(tmp_path: Any, targets: str, weights: str | None) -> None:
    """``fit --training`` with LoRA's flags: the per-GPU account trains the adapter only,
    its gradients one float32 number per parameter peft trains, the frozen base in its
    dtype (or quantized)."""
    import json

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA, "architectures": ["LlamaForCausalLM"]}))
    lc = LoraConfig(
        r=4, targets="all-linear" if targets == "all-linear" else tuple(targets.split(","))
    )
    _, (trainable, _) = _peft(LLAMA, lc)
    args = ["fit", "hf", str(path), "--gpu", "h100", "--training", "adamw", "--lora-rank", "4"]
    args += ["--lora-targets", targets, "--format", "json"]
    result = _cli(args + (["--weights", weights] if weights else []), 100)
    assert result.exit_code == 0, result.output
    lines = {line["label"]: line["bytes"] for line in json.loads(result.stdout)["per_gpu"]["lines"]}
    assert lines["gradients"] == 4 * trainable
    plain = _cli([*args[:7], "--format", "json"], 100)
    frozen = {line["label"]: line["bytes"] for line in json.loads(plain.stdout)["per_gpu"]["lines"]}
    assert frozen["gradients"] > lines["gradients"]
    if weights:  # the frozen base quantized, the adapter as it was
        whole = _cli(args, 100)
        unquantized = {x["label"]: x["bytes"] for x in json.loads(whole.stdout)["per_gpu"]["lines"]}
        assert lines["weights"] < unquantized["weights"]
        assert lines["gradients"] == unquantized["gradients"]


def test_fit_refuses_an_adapter_without_training(tmp_path: Any) -> None:
    import json

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA, "architectures": ["LlamaForCausalLM"]}))
    result = _cli(["fit", "hf", str(path), "--gpu", "h100", "--lora-rank", "4"], 80)
    assert result.exit_code == 2, result.output
    assert "--training" in result.output and len(result.output.strip().splitlines()) == 1


def test_mixed_precision_keeps_the_float32_adapters_once(tmp_path: Any) -> None:
    """Under FSDP with mixed precision the ranks keep the frozen base in its dtype and the
    trained tensors in float32: LoRA's adapters, float32 already, are held once (as the
    sharded parameters), neither left out nor doubled; their gradients and Adam's state
    are float32 too."""
    import json

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA, "architectures": ["LlamaForCausalLM"]}))
    args = ["fit", "hf", str(path), "--gpu", "h100", "--training", "adamw", "--lora-rank", "4"]
    args += ["--lora-targets", "all-linear", "--format", "json"]
    _, (trainable, _) = _peft(LLAMA, LoraConfig(r=4, targets="all-linear"))

    def lines(extra: list[str]) -> dict[str, int]:
        result = _cli([*args, *extra], 100)
        assert result.exit_code == 0, result.output
        return {x["label"]: x["bytes"] for x in json.loads(result.stdout)["per_gpu"]["lines"]}

    plain, mixed = lines([]), lines(["--mixed-precision"])
    assert mixed["frozen weights"] + mixed["fp32 master weights"] == plain["weights"]
    assert mixed["fp32 master weights"] == 4 * trainable
    assert mixed["gradients"] == plain["gradients"] == 4 * trainable
