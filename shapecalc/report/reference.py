"""The layer reference, written from the registry: one Markdown section per kind.

``scripts/gen_docs.py`` writes ``docs/layers/<family>.md`` from :func:`family_page`; a
test fails when the committed pages differ from what this module writes.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import Counter
from collections.abc import Iterable
from typing import Any

from shapecalc.core.choices import PORTABLE
from shapecalc.core.declare import Architecture, Argument, arguments_of
from shapecalc.core.dims import count_noun, count_str, dim_str, shape_str
from shapecalc.core.errors import echo
from shapecalc.core.spec import LayerSpec
from shapecalc.layers import LAYER_KINDS

__all__ = [
    "FAMILIES",
    "architecture_page",
    "architectures_index",
    "family_page",
    "index_page",
    "kind_section",
    "signature",
]

#: family -> (page title, one line)
FAMILIES: dict[str, tuple[str, str]] = {
    "recurrent": ("Recurrent layers", "RNN, GRU, LSTM and their cells"),
    "linear": ("Linear layers", "Linear, Bilinear and layers without parameters"),
    "embedding": ("Embeddings", "lookup tables"),
    "conv": ("Convolutions", "Conv and ConvTranspose in 1, 2 and 3 dimensions"),
    "norm": ("Normalisation", "BatchNorm, InstanceNorm, LayerNorm, GroupNorm, RMSNorm"),
    "attention": ("Attention", "MultiheadAttention and the Transformer layers"),
    "activation": (
        "Activations",
        "ReLU, GELU, SiLU and the other elementwise ones, Softmax, PReLU",
    ),
    "pooling": (
        "Pooling and resampling",
        "max, average and adaptive pooling in 1, 2 and 3 dimensions, and Upsample",
    ),
}


def signature(cls: type[LayerSpec]) -> str:
    """``LSTM(input_size, hidden_size, num_layers=1, ...)``: torch.nn's constructor."""
    parts = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING:
            parts.append(f.name)
        else:
            parts.append(f"{f.name}={echo(f.default)}")
    return f"{cls.kind}({', '.join(parts)})"


def _paragraphs(text: str | None) -> list[str]:
    """A docstring's paragraphs of prose, each on one line, without the examples."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in [*inspect.cleandoc(text or "").splitlines(), ""]:
        if line.strip().startswith(">>>") or line.strip() == "Example:":
            break
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _doc(text: str | None) -> str:
    """A docstring's prose on one line, without doctest examples."""
    return " ".join(_paragraphs(text))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def kind_section(cls: type[LayerSpec]) -> str:
    """One kind: signature, parameters with symbolic shapes and formulas, buffers, output
    shape rule and a worked example."""
    symbolic = cls(**cls.formula_args)
    example = cls(**cls.example)
    lines = [f"## {cls.kind}", "", cls.summary + ".", "", f"`torch.nn.{signature(cls)}`", ""]
    params = list(symbolic.params())
    if params:
        lines += [
            f"Parameters of `{symbolic}`:",
            "",
            "| Parameter | Shape | Count | Role |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{p.name}` | {shape_str(p.shape)} | {dim_str(p.count)} | {_cell(p.role)} |"
            for p in params
        ]
        lines += ["", f"Total: **{dim_str(symbolic.total())}**", ""]
    else:
        lines += ["No parameters.", ""]
    buffers = list(symbolic.buffers())
    if buffers:
        lines += ["Buffers (saved state, not trained):", ""]
        lines += [f"- `{b.name}` {shape_str(b.shape)}: {b.role}" for b in buffers]
        lines.append("")
    rule = _doc(cls.output_shapes.__doc__)
    if rule:
        lines += [f"Output shapes: {rule}", ""]
    work = example.work(*cls.example_input)
    outputs = work.outputs
    total = example.total()
    lines += [
        f"Example: `{example}` has {count_noun(total, 'parameter')}"
        + (
            f" ({'; '.join(f'`{p.name}` {shape_str(p.shape)}' for p in example.params())})"
            if 0 < len(list(example.params())) <= 4
            else ""
        )
        + f". Input {', '.join(shape_str(s) for s in cls.example_input)} gives "
        f"{', '.join(shape_str(s) for s in outputs)}.",
        "",
    ]
    kept = work.kept_bytes(4)
    lines += [
        f"Compute for that input: {count_str(work.macs)} multiply-accumulates, "
        f"{count_str(work.forward_flops)} FLOPs forward and {count_str(work.backward_flops)} "
        f"backward; {count_str(kept)} bytes kept for backward at fp32"
        + (f" ({_named_counts(st.name for st in work.saved)})" if work.saved else "")
        + "."
        + (f" Elementwise FLOPs: {work.other_rule}." if work.other_rule else ""),
        "",
    ]
    if work.state:
        lines += [
            "Inference state carried between calls: "
            + "; ".join(f"{st.name} {shape_str(st.shape)}" for st in work.state)
            + ".",
            "",
        ]
    return "\n".join(lines)


def _named_counts(names: Iterable[str]) -> str:
    """``query; q (2×); dropout mask (3×)``: each name once, with how often it occurs."""
    counts = Counter(names)
    return "; ".join(f"{n} ({c}×)" if c > 1 else n for n, c in counts.items())


def family_page(family: str) -> str:
    title, blurb = FAMILIES[family]
    kinds = sorted((k for k, c in LAYER_KINDS.items() if c.family == family))
    head = [
        f"# {title}",
        "",
        f"{blurb[0].upper() + blurb[1:]}. Generated from shapecalc's layer registry: every "
        "name, shape and count below is what the engine computes, and the test suite checks "
        "it against PyTorch.",
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(kind_section(LAYER_KINDS[k]) for k in kinds)


def index_page() -> str:
    lines = [
        "# Layer reference",
        "",
        "Every layer kind shapecalc knows, by family. `shapecalc layer KIND --help` shows "
        "a kind's arguments; `shapecalc layers` lists them in the terminal.",
        "",
        "| Kind | Family | What it is |",
        "|---|---|---|",
    ]
    for kind, cls in sorted(LAYER_KINDS.items()):
        lines.append(f"| [{kind}]({cls.family}.md#{kind.lower()}) | {cls.family} | {cls.summary} |")
    return "\n".join(lines) + "\n"


# -- architectures -------------------------------------------------------------------------
def _default(f: Any, argument: Argument) -> str:
    if f.default is dataclasses.MISSING:
        return "required"
    if argument.default_text:
        return argument.default_text
    if argument.kind == "flag":
        return "on" if f.default else "off"
    if argument.kind == "indices" and not f.default:
        return "none"
    if argument.kind == "kinds" and not f.default:
        return "the type's rule"
    if argument.kind == "sizes":
        return "`" + ",".join(str(n) for n in f.default) + "`"
    return f"`{f.default}`"


def architecture_page(cls: type[Architecture], example: str) -> str:
    """An architecture's reference page, from its declaration: what it is, every argument
    (option, letter, default, rule, help), the library function, and ``example``: the
    report of its example command."""
    prose = "\n\n".join(_paragraphs(cls.__doc__))
    lines = [
        f"# {cls.title or cls.__name__}: `shapecalc {cls.command}`",
        "",
        prose,
        "",
        "## Arguments",
        "",
        "Each is an option of `shapecalc "
        + cls.command
        + "` and an argument of the library function `shapecalc."
        + cls.owner()
        + "(...)`, by the same name (with `_` for `-`). A size takes an integer or a size "
        "name; a name prints every count as a formula.",
        "",
        "| Option | Letter | Default | Rule | What it is |",
        "|---|---|---|---|---|",
    ]
    for f, argument in arguments_of(cls):
        option = "--" + f.name.replace("_", "-")
        if argument.kind == "flag" and f.default:
            option += f"` / `--no-{f.name.replace('_', '-')}"
        rule = argument.rule
        if argument.below:
            rule = rule.replace(
                f"smaller than {argument.below}", f"smaller than `{argument.below}`"
            )
        lines.append(
            f"| `{option}` | {argument.letter or ''} | {_default(f, argument)} | {_cell(rule)} | "
            f"{_cell(argument.help)} |"
        )
    solvable = [f.name for f, a in arguments_of(cls) if a.kind == "size" and a.solvable]
    lines += [
        "",
        f"`shapecalc solve {cls.command} --params N --for SIZE` solves for "
        + ", ".join(f"`{n.replace('_', '-')}`" for n in solvable)
        + (
            f"; `shapecalc compare-conventions {cls.command} ...` shows the model as Keras "
            "and ONNX store it."
            if cls.command in PORTABLE
            else "."
        ),
        *_hf_section(cls),
        "",
        "## Example",
        "",
        f"`shapecalc {cls.command} {cls.example} --format markdown`:",
        "",
        example.replace("### ", "### Example: ", 1).rstrip(),
        "",
    ]
    return "\n".join(lines)


def _hf_section(cls: type[Architecture]) -> list[str]:
    """The Hugging Face model types the architecture declares: each one's classes, and
    the config field that sets each argument (``shapecalc hf`` reads them so)."""
    if not cls.hf:
        return []
    lines = [
        "",
        "## From a Hugging Face config",
        "",
        f"`shapecalc hf PATH` builds these model types with `shapecalc {cls.command}`'s "
        "model; each config field sets the argument after its arrow, a field left out takes "
        "the config class's default.",
        "",
    ]
    for t in cls.hf:
        classes = ", ".join(f"`{name}`" for name in t.classes)
        read = ", ".join(f"{'/'.join(t.fields(argument))} → {argument}" for argument in t.keys)
        lines.append(f"- `{t.model_type}` ({t.config_class}): {classes}.")
        lines.append(f"  Reads {_cell(read)}.")
        if t.fixed:
            fixed = ", ".join(f"{k} = {v}" for k, v in t.fixed.items())
            lines.append(f"  Always {_cell(fixed)}.")
    return lines


def architectures_index(classes: list[type[Architecture]]) -> str:
    lines = [
        "# Architectures",
        "",
        "Whole models, each declared once in `shapecalc/architectures/` (see "
        "[add an architecture](../howto/add-an-architecture.md)); each is a command, a "
        "library function and a page here.",
        "",
        "| Command | Library | What it is |",
        "|---|---|---|",
    ]
    for cls in classes:
        first = (_paragraphs(cls.__doc__) or [cls.title])[0]
        lines.append(
            f"| [`shapecalc {cls.command}`]({cls.command}.md) | `shapecalc.{cls.owner()}` | "
            f"{_cell(first)} |"
        )
    return "\n".join(lines) + "\n"
