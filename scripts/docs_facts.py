"""The numbers the hand-written docs pages use, computed by the engine.

``scripts/templates/**.md`` hold ``{{name}}`` placeholders; ``gen_docs.py`` fills them
from :func:`facts` (an unknown name is an error), so no number in the docs is typed by hand.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import shapecalc
from shapecalc.analysis.explain import explain
from shapecalc.core.dims import count_str, dim_str, shape_str

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def facts() -> dict[str, str]:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    rows = {r.name: r for r in model.rows()}
    one_hot = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2, one_hot=True)
    out: dict[str, str] = {"V": "65", "H": "512", "E": "512", "total": count_str(model.total)}
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        out[f"shape_{name}"] = shape_str(rows[f"lstm.{name}"].shape)
    out["shape_head_weight"] = shape_str(rows["head.weight"].shape)
    out["onehot_shape_weight_ih_l0"] = shape_str(
        next(r.shape for r in one_hot.rows() if r.name == "lstm.weight_ih_l0")
    )
    cell = next(s for s in explain(model) if s.title.startswith("The LSTM cell"))
    out["equations"] = "\n".join(line.strip() for line in cell.lines if line.startswith("  "))
    bias_hh = rows["lstm.bias_hh_l0"].count
    out["keras_fewer"] = count_str(bias_hh)
    layers = model.arguments["layers"]
    out["keras_total"] = count_str(model.total - bias_hh * layers)

    # term by term, from the rows
    def layer_sum(suffix: str) -> tuple[int, object]:
        picked = [r for r in model.rows() if r.name.endswith(suffix)]
        return (
            sum(int(r.count) for r in picked),  # type: ignore[call-overload]
            sum((r.formula for r in picked), start=0),
        )

    for key, suffix in (("layer0", "_l0"), ("layer1", "_l1")):
        count, formula = layer_sum(suffix)
        out[f"count_{key}"] = count_str(count)
        out[f"formula_{key}"] = formula.factored() if hasattr(formula, "factored") else str(formula)
    out["count_embedding"] = count_str(model.subtotal("embedding"))
    out["formula_embedding"] = dim_str(model.subtotal_formula("embedding"))
    out["count_head"] = count_str(model.subtotal("head"))
    out["formula_head"] = dim_str(model.subtotal_formula("head"))
    out["formula_total"] = dim_str(model.total_formula)
    out["onehot_rows"] = "\n".join(
        f"| `{r.name}` | {shape_str(r.shape)} | {count_str(r.count)} |" for r in one_hot.rows()
    )
    out["onehot_total"] = count_str(one_hot.total)
    out["onehot_formula"] = dim_str(one_hot.total_formula)
    rnn = {r.name: r for r in shapecalc.rnn_lm(vocab=65, hidden=512, layers=1, one_hot=True).rows()}
    for name, row in (("W_xh", "weight_ih_l0"), ("W_hh", "weight_hh_l0")):
        out[f"rnn_{name}"] = " × ".join(str(d) for d in rnn[f"rnn.{row}"].shape)
    out["rnn_W_hy"] = " × ".join(str(d) for d in rnn["head.weight"].shape)
    return out


def fill(template: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"the docs template asks for {{{{{key}}}}}, which facts() lacks")
        return values[key]

    return PLACEHOLDER.sub(replace, template)


def cli(args: list[str], width: int = 100) -> str:
    """A command's real output (stdout, then stderr), as a reader's terminal shows it."""
    from click.testing import CliRunner

    from shapecalc.cli import cli as command

    env = {"COLUMNS": str(width), "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}
    result = CliRunner().invoke(command, args, env=env, prog_name="shapecalc")
    text = result.stdout + result.stderr
    return "\n".join(line.rstrip() for line in text.splitlines())


def cost_facts() -> dict[str, str]:
    """The numbers of concepts/compute-and-memory.md."""
    from shapecalc.analysis.cost import analyze
    from shapecalc.core.dims import Dim, symbol
    from shapecalc.layers import LAYER_KINDS

    def amount(value: Dim) -> str:
        return count_str(value) if isinstance(value, int) else value.grouped()

    headline = ["lstm", "--layers", "2", "--hidden", "512", "--vocab", "65"]
    out: dict[str, str] = {}
    full = cli([*headline, "--all", "--batch", "1", "--seq-len", "100"])
    out["all_output"] = "...\n" + full[full.index("Per layer") :]  # the parameter table cut
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    symbolic = analyze(model)
    out["shape_rows"] = "\n".join(
        f"| {c.name} | {', '.join(shape_str(s) for s in c.inputs)} | "
        + ", ".join(
            f"{n} {shape_str(s)}" if len(c.outputs) > 1 else shape_str(s)
            for n, s in zip(c.spec.output_names or ("",), c.outputs, strict=False)
        )
        + " |"
        for c in symbolic.layers
    )
    conv = LAYER_KINDS["Conv2d"](3, 64, 7, stride=2, padding=3)
    (shape,) = conv.output_shapes((symbol("B"), 3, symbol("H"), symbol("W")))
    out["conv_shape"] = f"`{shape_str(shape)}`"
    out["conv_224"] = str(shape[2].subs({"H": 224}))  # type: ignore[union-attr]
    out["shape_error"] = cli(
        [
            "layer",
            "conv2d",
            "--in-channels",
            "3",
            "--out-channels",
            "64",
            "--kernel-size",
            "7",
            "--input-shape",
            "8,4,224,224",
            "--shapes",
        ]
    )
    rules = {}
    examples = {
        "LSTM": ((symbol("T"), symbol("B"), 8),),
        "GRU": ((symbol("T"), symbol("B"), 8),),
        "RNN": ((symbol("T"), symbol("B"), 8),),
        "Linear": ((symbol("B"), 8),),
        "Conv2d": ((1, 8, 9, 9),),
        "LayerNorm": ((2, 8),),
        "BatchNorm2d": ((2, 8, 4, 4),),
        "RMSNorm": ((2, 8),),
        "MultiheadAttention": ((3, 2, 8), (3, 2, 8), (3, 2, 8)),
        "Dropout": ((2, 8),),
        "PReLU": ((2, 8),),
        "EmbeddingBag": ((2, 3),),
        "ReLU": ((2, 8),),
        "GELU": ((2, 8),),
        "Softmax": ((2, 8),),
        "MaxPool2d": ((1, 8, 9, 9),),
        "AvgPool2d": ((1, 8, 9, 9),),
        "AdaptiveAvgPool2d": ((1, 8, 9, 9),),
        "Upsample": ((1, 8, 9, 9),),
    }
    args: dict[str, tuple[object, ...]] = {
        "LSTM": (8, 16),
        "GRU": (8, 16),
        "RNN": (8, 16),
        "Linear": (8, 4),
        "Conv2d": (8, 4, 3),
        "LayerNorm": (8,),
        "BatchNorm2d": (8,),
        "RMSNorm": (8,),
        "MultiheadAttention": (8, 2),
        "Dropout": (),
        "PReLU": (),
        "EmbeddingBag": (10, 4),
        "ReLU": (),
        "GELU": (),
        "Softmax": (-1,),
        "MaxPool2d": (3,),
        "AvgPool2d": (3,),
        "AdaptiveAvgPool2d": (4,),
        "Upsample": (None, 2, "bilinear"),
    }
    for kind, inputs in examples.items():
        rules[kind] = LAYER_KINDS[kind](*args[kind]).work(*inputs).other_rule
    rules["Embedding"] = "none: a lookup"
    rules["Transformer layers"] = (
        LAYER_KINDS["TransformerEncoderLayer"](8, 2).work((3, 2, 8)).other_rule
    )
    out["rule_rows"] = "\n".join(f"| {k} | {v} |" for k, v in rules.items())
    letters = analyze(shapecalc.lstm_lm("V", "H", 2))
    per_token = letters.per_token(letters.forward_flops)
    out["flops_per_token_formula"] = str(per_token)
    concrete = analyze(model, batch=1, seq_len=100)
    out["flops_per_token"] = count_str(concrete.per_token(concrete.forward_flops) or 0)
    out["flops_forward"] = f"{count_str(concrete.forward_flops)} FLOPs"
    out["flops_forward_int"] = str(concrete.forward_flops)
    out["activation_bytes"] = str(concrete.activation_bytes)
    out["memory_rows"] = (
        "\n".join(f"| {line.label} | {amount(line.bytes)} |" for line in concrete.memory)
        + f"\n| *training total* | *{amount(concrete.training_bytes)}* |"
    )
    return out


def convention_facts() -> dict[str, str]:
    """The numbers and outputs of concepts/frameworks.md."""
    from shapecalc.analysis.conventions import gate_order, params

    out: dict[str, str] = {}
    for framework in ("pytorch", "keras", "onnx"):
        for kind in ("LSTM", "GRU"):
            out[f"order_{framework}_{kind.lower()}"] = gate_order(framework, kind)
    args = ["compare-conventions", "lstm", "--layers", "2", "--hidden", "512", "--vocab", "65"]
    out["compare_output"] = cli(args, width=130)
    out["port_output"] = cli(["port", *args[1:], "--from", "pytorch", "--to", "keras"], width=100)
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    out["keras_first_two"] = repr([(p.name, p.shape) for p in params(model, "keras")][:2])
    budget = [
        shapecalc.solve(shapecalc.lstm_lm, "10M", layers=2, vocab=65, convention=c)
        for c in ("pytorch", "keras")
    ]
    out["solve_keras"] = (
        f"10M parameters, 2 layers, 65 characters: hidden {budget[1].below.size} with "
        f"{budget[1].below.total:,} in Keras, {budget[0].below.size} with "
        f"{budget[0].below.total:,} in PyTorch"
    )
    return out


def howto_facts() -> dict[str, str]:
    """Numbers and outputs of the how-to pages (the bridge parts need torch)."""
    import os
    import tempfile

    out: dict[str, str] = {}
    out["headline"] = cli(["lstm", "--layers", "2", "--hidden", "512", "--vocab", "65"])
    out["solve_table"] = cli(["solve", "lstm", "--params", "10M", "--layers", "2", "--vocab", "65"])
    solution = shapecalc.solve(shapecalc.lstm_lm, "10M", free="hidden", layers=2, vocab=65)
    out["solve_below"] = repr((solution.below.size, solution.below.total))
    out["solve_above"] = repr((solution.above.size, solution.above.total))
    out["solve_formula"] = repr(str(solution.formula))
    by64 = shapecalc.solve(
        shapecalc.lstm_lm, "10M", free="hidden", multiple_of=64, layers=2, vocab=65
    )
    out["solve_64"] = (
        f"hidden {by64.below.size} ({by64.below.total:,} parameters) or "
        f"{by64.above.size} ({by64.above.total:,})"
    )
    import torch
    from safetensors.torch import save_file

    try:
        shapecalc.assert_matches(
            shapecalc.lstm_lm(65, 512, 2), shapecalc.build(shapecalc.lstm_lm(65, 512, 3))
        )
    except AssertionError as err:
        out["mismatch"] = f"{type(err).__module__}.{type(err).__qualname__}: {err}"
    verified = cli(
        [
            "lstm",
            "--layers",
            "2",
            "--hidden",
            "512",
            "--vocab",
            "65",
            "--verify",
            "--format",
            "json",
        ]
    ).splitlines()[-1]
    # the page should not change with the installed torch release
    out["verified"] = re.sub(r"torch [^,]+,", "torch <version>,", verified)
    with tempfile.TemporaryDirectory() as folder:
        here = os.getcwd()
        os.chdir(folder)
        try:
            save_file(
                {
                    "encoder.0.weight": torch.zeros(256, 128),
                    "encoder.0.bias": torch.zeros(256),
                    "encoder.1.weight": torch.zeros(256, 256, dtype=torch.bfloat16),
                    "head.weight": torch.zeros(10, 256, dtype=torch.bfloat16),
                },
                "model.safetensors",
            )
            out["inspect_tree"] = cli(["inspect", "model.safetensors", "--depth", "3"])
        finally:
            os.chdir(here)
    return out


def _block(path: str, start: str) -> str:
    """The lines of a repository file from the one starting with ``start`` to the end of
    that statement: the next line that closes it at the margin, or the next blank line."""
    from pathlib import Path

    lines = (Path(__file__).resolve().parent.parent / path).read_text(encoding="utf-8")
    rows = lines.splitlines()
    first = next(i for i, line in enumerate(rows) if line.startswith(start))
    for end in range(first + 1, len(rows)):
        if rows[end] in ("]", "}", ")"):
            return "\n".join(rows[first : end + 1])
        if rows[end] == "":
            return "\n".join(rows[first:end])
    return "\n".join(rows[first:])


def architecture_facts() -> dict[str, str]:
    """The how-to "Add an architecture": the MLP's file, its count row and twin, its output."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = {
        "mlp_source": (root / "shapecalc/architectures/mlp.py")
        .read_text(encoding="utf-8")
        .rstrip(),
        "mlp_count": _block("tests/test_known_counts.py", "# Keras' MNIST multilayer perceptron"),
        "mlp_twin": _block("tests/twins.py", "def mlp_twin"),
        "twins": _block("tests/twins.py", "TWINS: dict"),
    }
    example = ["mlp", "--inputs", "784", "--hidden", "512", "--layers", "2", "--outputs", "10"]
    out["mlp_output"] = cli(example)
    explained = cli([*example, "--explain"])
    out["mlp_explain"] = explained[explained.index("The sizes") :]
    out["mlp_solve"] = cli(
        ["solve", "mlp", "--params", "1M", "--inputs", "784", "--layers", "2", "--outputs", "10"]
    )
    return out


def compose_facts() -> dict[str, str]:
    """The how-to "Compose your own network": ResNet from tests/zoo/resnet.py."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from shapecalc.analysis.cost import analyze
    from shapecalc.core.dims import symbol
    from shapecalc.layers import LAYER_KINDS
    from shapecalc.report import Report, text
    from tests.zoo.resnet import resnet

    model = resnet(18)
    cost = analyze(model, batch=1)
    symbolic = analyze(model, ((symbol("B"), 3, symbol("H"), symbol("W")),))
    macs = symbolic.macs
    return {
        "kinds": str(len(LAYER_KINDS)),
        "resnet_source": (root / "tests/zoo/resnet.py").read_text(encoding="utf-8").rstrip(),
        "resnet18_total": f"{model.total:,}".replace(",", "_"),
        "resnet18_first": repr(model.named_parameters()[:2]),
        "resnet18_output": repr(cost.layers[-1].outputs),
        "resnet18_macs": f"{cost.macs:,}".replace(",", "_"),
        "resnet18_depth2": text(Report(model, depth=2), "markdown").strip(),
        "resnet18_symbolic_macs": macs.grouped() if hasattr(macs, "grouped") else str(macs),
        **vision_facts(root),
    }


def vision_facts(root: Any) -> dict[str, str]:
    """ConvNeXt's block from shapecalc/architectures/_vision.py, ``shapecalc show`` on a
    file of one's own, and the own-layer how-to's example (tests/zoo/grn.py)."""
    import inspect
    import os
    import tempfile

    from shapecalc.architectures import _vision

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "net.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(
                "from shapecalc.architectures._vision import convnext\n"
                "model = convnext(stages=((16, 2), (32, 2)), num_classes=10, image_size=32)\n"
            )
        shown = cli(["show", f"{path}:model", "--depth", "2", "--flops", "--batch", "1"], 80)
    return {
        "cn_block_source": inspect.getsource(_vision.cn_block).rstrip(),
        "show_example": "$ shapecalc show net.py:model --depth 2 --flops --batch 1\n"
        + shown.replace(path, "net.py").rstrip(),
        "grn_source": (root / "tests/zoo/grn.py").read_text(encoding="utf-8").rstrip(),
    }


def transformer_facts() -> dict[str, str]:
    """The concept page on transformer sizes and the how-to on sizing a language model."""
    from shapecalc.analysis.cost import analyze
    from shapecalc.analysis.sizing import solve

    out: dict[str, str] = {}
    gpt2 = shapecalc.gpt2(vocab=50257, hidden=768, layers=12, heads=12)
    out["gpt2_total"] = count_str(gpt2.total)
    out["gpt2_formula"] = dim_str(gpt2.total_formula)
    gpt2_args = ["gpt2", "--layers", "12", "--hidden", "768", "--heads", "12", "--vocab", "50257"]
    explained = cli([*gpt2_args, "--explain"], width=80)
    out["gpt2_explain"] = explained[explained.index("What the sizes mean") :]
    symbolic = shapecalc.gpt2(vocab="V", hidden="H", layers="L", heads=12, context="C")
    block = sum(
        (r.formula for r in symbolic.rows() if r.name.startswith("transformer.h.")), start=0
    )
    out["gpt2_block_formula"] = dim_str(block)

    llama_args = ["--vocab", "32000", "--hidden", "4096", "--layers", "32", "--heads", "32"]
    explained = cli(["llama", *llama_args, "--explain"], width=80)
    out["llama_explain"] = explained[explained.index("What the sizes mean") :]
    llama = shapecalc.llama(vocab=32000, hidden=4096, layers=32, heads=32)
    out["llama_total"] = count_str(llama.total)
    out["llama_formula"] = dim_str(llama.total_formula)
    out["llama_intermediate"] = count_str(llama.sizes["I"])

    sizes70 = {"vocab": 32000, "hidden": 8192, "layers": 80, "heads": 64, "intermediate": 28672}
    gqa = shapecalc.llama(**sizes70, kv_heads=8)
    full = shapecalc.llama(**sizes70)
    shapes = dict(gqa.named_parameters())
    out["k_proj_gqa"] = shape_str(shapes["model.layers.0.self_attn.k_proj.weight"])
    out["k_proj_full"] = shape_str(
        dict(full.named_parameters())["model.layers.0.self_attn.k_proj.weight"]
    )
    out["total_70b"] = count_str(gqa.total)
    out["total_70b_full"] = count_str(full.total)
    out["gqa_saved"] = count_str(full.total - gqa.total)
    for name, model in (("gqa", gqa), ("full", full)):  # the KV cache in bf16
        cache = analyze(model, batch=1, seq_len=4096, dtype="bf16", training="none").state_bytes
        out[f"kv_token_{name}"] = count_str(cache // 4096)
        out[f"kv_4096_{name}"] = f"{cache / 1e9:.2f}"

    cost = analyze(gpt2, batch=1, seq_len=1024)
    six = cost.six_n()
    assert six is not None
    out.update(
        six_rule=count_str(six.rule),
        six_weights=count_str(six.weights),
        six_attention=count_str(six.attention),
        six_other=count_str(six.other),
        six_counted=count_str(six.counted),
        six_idle=count_str(six.idle),
        six_share=f"{100 * six.counted / six.rule:.0f}",
    )
    flops = cli([*gpt2_args, "--flops", "--batch", "1", "--seq-len", "1024"], 120)
    out["gpt2_six_n"] = "\n".join(_note(flops, "6·N rule"))

    mixtral_args = ["--vocab", "32000", "--hidden", "4096", "--layers", "32", "--heads", "32"]
    mixtral_args += ["--kv-heads", "8", "--intermediate", "14336", "--experts", "8"]
    mixtral = shapecalc.llama(
        vocab=32000, hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336, experts=8
    )
    out["mixtral_command"] = _shell(["shapecalc", "llama", *mixtral_args])
    table = cli(["llama", *mixtral_args], 80)
    out["mixtral_footer"] = table[table.index("Total") : table.index("Memory")].rstrip()
    out["mixtral_total"] = count_str(mixtral.total)
    out["mixtral_active"] = count_str(mixtral.active)
    out["mixtral_without"] = count_str(mixtral.active - mixtral.vocabulary)
    out["mixtral_table"] = count_str(mixtral.active - mixtral.embeddings)
    out["moe_table"] = _moe_table()
    out["mixtral_active_formula"] = dim_str(mixtral.active_formula)

    budget = ["--params", "1.2B", "--layers", "24", "--heads", "16", "--kv-heads", "4"]
    budget += ["--vocab", "32000"]
    out["solve_output"] = cli(["solve", "llama", *budget, "--multiple-of", "64"])
    found = solve(
        shapecalc.llama,
        "1.2B",
        "hidden",
        multiple_of=64,
        layers=24,
        heads=16,
        kv_heads=4,
        vocab=32000,
    ).closest
    out["solved_hidden"] = str(found.size)
    out["solved_total"] = count_str(found.total)
    sized = ["llama", "--vocab", "32000", "--hidden", str(found.size), "--layers", "24"]
    sized += ["--heads", "16", "--kv-heads", "4"]
    out["sized_command"] = " ".join(["shapecalc", *sized])
    memory = cli(
        [
            *sized,
            "--memory",
            "--batch",
            "8",
            "--seq-len",
            "2048",
            "--dtype",
            "bf16",
            "--mixed-precision",
            "--training",
            "adamw",
        ],
        120,
    )
    out["sized_memory"] = memory[
        memory.index("Memory in training (adamw") : memory.index("\nKept")
    ].rstrip()
    flops = cli([*sized, "--flops", "--batch", "8", "--seq-len", "2048"], 120)
    out["sized_six_n"] = "\n".join(_note(flops, "6·N rule"))
    out["sized_summary"] = "\n".join(_note(flops, "Summary"))
    return out


def _moe_table() -> str:
    """Total and active of the published mixtures (tests/published_moe.py), in billions."""
    import importlib.util
    from pathlib import Path

    from shapecalc.adapters.hf_config import from_hf_config

    path = Path(__file__).resolve().parent.parent / "tests" / "published_moe.py"
    spec = importlib.util.spec_from_file_location("published_moe", path)
    assert spec is not None and spec.loader is not None
    published = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(published)

    rows = [
        ("Qwen1.5-MoE-A2.7B", published.QWEN15_MOE_A27B),
        ("Qwen3-30B-A3B", published.QWEN3_30B_A3B),
        ("Qwen3-235B-A22B", published.QWEN3_235B_A22B),
        ("DeepSeek-V2-Lite", published.DEEPSEEK_V2_LITE),
        ("DeepSeek-V3", published.DEEPSEEK_V3),
        ("GLM-4.5-Air", published.GLM45_AIR),
        ("gpt-oss-20b", published.GPT_OSS_20B),
        ("gpt-oss-120b", published.GPT_OSS_120B),
    ]
    lines = [
        "| model | total | active | without the embedding table | without it and the head |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, config in rows:
        quantized = ("quantization_config",) if "quantization_config" in config else ()
        m = from_hf_config(config, allow=quantized)  # counted unquantized
        table = m.active - m.embeddings
        values = (m.total, m.active, table, table - m.head_params)
        lines.append(f"| {name} | " + " | ".join(count_str(v) for v in values) + " |")
    return "\n".join(lines)


def _note(output: str, start: str) -> list[str]:
    """The lines of one note (``FLOPs rule  6·N rule: ...``) of a command's output."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if start in line:
            end = i + 1
            while end < len(lines) and lines[end].startswith(" "):
                end += 1
            return lines[i:end]
    raise KeyError(start)


#: Llama 3.1 8B's config.json as its Hub repository holds it
LLAMA_31_8B = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0",
    "use_cache": True,
    "vocab_size": 128256,
}


def hf_facts() -> dict[str, str]:
    """The Hugging Face page: a published config counted, and a damaged folder checked (its
    shards written from shapecalc's own names, so no transformers is needed here)."""
    import json
    import os
    import struct

    out: dict[str, str] = {}
    with llama_folder():
        out["hf_llama"] = cli(["hf", "Llama-3.1-8B", "--depth", "2"])
        memory = cli(
            [
                "hf",
                "Llama-3.1-8B",
                "--memory",
                "--seq-len",
                "8192",
                "--batch",
                "1",
                "--dtype",
                "bf16",
                "--training",
                "none",
            ]
        ).splitlines()
        start = memory.index(
            next(line for line in memory if line.startswith("Memory at inference"))
        )
        end = next(i for i in range(start, len(memory)) if memory[i].startswith("└"))
        summary = next(line for line in memory if line.startswith("Summary"))
        out["hf_memory"] = "\n".join([*memory[start : end + 1], summary])
        tiny = {
            **LLAMA_31_8B,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 256,
            "torch_dtype": "float32",
        }
        os.mkdir("tiny")
        with open("tiny/config.json", "w", encoding="utf-8") as handle:
            json.dump(tiny, handle)
        model = shapecalc.from_hf_config(tiny)
        shards: list[dict[str, list[int]]] = [{}, {}]
        for i, (name, shape) in enumerate(model.named_parameters()):
            shards[i % 2][name] = [int(d) for d in shape]  # type: ignore[call-overload]
        lost, reshaped = (
            "model.layers.1.mlp.up_proj.weight",
            "model.layers.0.self_attn.k_proj.weight",
        )
        for shard in shards:
            shard.pop(lost, None)  # a tensor lost
            if reshaped in shard:
                shard[reshaped] = [64, 64]  # one of the wrong shape
        index = {}
        for n, shard in enumerate(shards, 1):
            file = f"model-0000{n}-of-00002.safetensors"
            header, offset = {}, 0
            for name, shape in shard.items():
                size = 4 * (shape[0] * (shape[1] if len(shape) > 1 else 1))
                header[name] = {
                    "dtype": "F32",
                    "shape": shape,
                    "data_offsets": [offset, offset + size],
                }
                offset += size
                index[name] = file
            text = json.dumps(header).encode()
            with open(f"tiny/{file}", "wb") as handle:
                handle.write(struct.pack("<Q", len(text)) + text + bytes(offset))
        with open("tiny/model.safetensors.index.json", "w", encoding="utf-8") as handle:
            json.dump({"weight_map": index}, handle)
        out["hf_inspect"] = cli(["inspect", "tiny", "--depth", "1"])
    return out


#: the characters of code one line holds in mkdocs-material's content column in a browser
#: 1280 px wide: 656 px of a code block (688 px less its padding) at 8.2 px a character
#: (Roboto Mono at 13.6 px); a terminal capture this wide needs no scroll bar there
#: (scripts/check_pages.py looks)
PAGE_WIDTH = 80


def page_facts() -> dict[str, str]:
    """The docs' terminal output as it fits a page: a wide table as the Markdown writer
    writes it (``--format markdown``, rendered as a table), the other captures as a terminal
    :data:`PAGE_WIDTH` columns wide shows them, cut as the functions above cut them."""
    import contextlib

    def markdown(args: list[str]) -> str:
        return cli([*args, "--format", "markdown"])

    def memory(text: str) -> str:
        """The memory account of a Markdown report: its heading and table."""
        start = text.index("#### Memory ")
        return text[start : text.index("\n- **", start)].rstrip()

    headline = ["lstm", "--layers", "2", "--hidden", "512", "--vocab", "65"]
    out = {
        "headline_md": markdown(headline),
        "compare_md": markdown(["compare-conventions", *headline]),
        "port_md": markdown(["port", *headline, "--from", "pytorch", "--to", "keras"]),
    }

    @contextlib.contextmanager
    def terminal(width: int):  # type: ignore[no-untyped-def]
        """Every ``cli(...)`` of this module at ``width`` columns, whatever width it asks."""
        wide = globals()["cli"]
        globals()["cli"] = lambda args, *_, **__: wide(args, width)
        try:
            yield
        finally:
            globals()["cli"] = wide

    with terminal(PAGE_WIDTH):
        narrow = {**cost_facts(), **architecture_facts(), **transformer_facts()}
    for name in (
        "all_output",
        "mlp_output",
        "mlp_explain",
        "mlp_solve",
        "solve_output",
        "sized_six_n",
        "sized_summary",
    ):
        out[f"{name}_{PAGE_WIDTH}"] = narrow[name]

    sized = narrow["sized_command"].split()[1:]
    flops = [*sized, "--flops", "--batch", "8", "--seq-len", "2048"]
    out[f"sized_flops_command_{PAGE_WIDTH}"] = _shell(["shapecalc", *flops], prompt="$ ")
    training = ["--batch", "8", "--seq-len", "2048", "--dtype", "bf16", "--mixed-precision"]
    training = [*sized, "--memory", *training, "--training", "adamw"]
    out[f"sized_memory_command_{PAGE_WIDTH}"] = _shell(["shapecalc", *training])
    out["sized_memory_md"] = memory(markdown(training))
    with llama_folder():
        out["hf_llama_md"] = markdown(["hf", "Llama-3.1-8B", "--depth", "2"])
        serve = ["--seq-len", "8192", "--batch", "1", "--dtype", "bf16", "--training", "none"]
        served = markdown(["hf", "Llama-3.1-8B", "--memory", *serve])
        summary = next(line for line in served.splitlines() if line.startswith("- **Summary"))
        out["hf_memory_md"] = memory(served) + "\n\n" + summary
    return out


def _shell(words: list[str], width: int = PAGE_WIDTH, prompt: str = "") -> str:
    """A command line as a shell takes it, continued with ``\\`` onto lines of at most
    ``width`` characters, each option kept with its value."""
    groups: list[str] = []
    for word in words:
        option = groups[-1] if groups else ""
        if option.startswith("-") and " " not in option and not word.startswith("-"):
            groups[-1] += " " + word
        else:
            groups.append(word)
    lines = [prompt + groups[0]]
    for group in groups[1:]:
        if len(lines[-1]) + 1 + len(group) + 2 > width:
            lines[-1] += " \\"
            lines.append("    " + group)
        else:
            lines[-1] += " " + group
    return "\n".join(lines)


@contextlib.contextmanager
def llama_folder() -> Iterator[None]:
    """A working folder holding ``Llama-3.1-8B/config.json``, as a download has it (the
    docs run ``shapecalc hf Llama-3.1-8B`` there)."""
    import json
    import os
    import tempfile

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            os.mkdir("Llama-3.1-8B")
            with open("Llama-3.1-8B/config.json", "w", encoding="utf-8") as handle:
                json.dump(LLAMA_31_8B, handle, indent=2)
            yield
        finally:
            os.chdir(here)


def home_facts() -> dict[str, str]:
    """The home page's tour beyond the LSTM: a transformer, a config.json, a checkpoint
    folder, as a terminal :data:`PAGE_WIDTH` columns wide shows them."""
    llama = ["llama", "--vocab", "32000", "--hidden", "4096", "--layers", "32", "--heads", "32"]
    llama += ["--intermediate", "11008", "--depth", "1"]
    out = {
        "home_llama_command": _shell(["shapecalc", *llama], prompt="$ "),
        "home_llama": cli(llama, PAGE_WIDTH),
    }
    with llama_folder():
        out["home_hf"] = cli(["hf", "Llama-3.1-8B", "--depth", "1"], PAGE_WIDTH)
    wide = globals()["cli"]
    globals()["cli"] = lambda args, *_, **__: wide(args, PAGE_WIDTH)
    try:
        out["home_inspect"] = hf_facts()["hf_inspect"]
    finally:
        globals()["cli"] = wide
    return out
