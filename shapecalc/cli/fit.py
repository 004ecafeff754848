"""``shapecalc fit COMMAND ...`` and ``shapecalc fit hf PATH``: does the model fit on an
accelerator, at what context, for how many sequences, on how many GPUs, in which weights
format, and how fast at most. Exit status 0 when it fits, 1 when it does not, 2 for bad
input."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import click

from shapecalc.cli.group import ExampleCommand, ShapecalcGroup, engine_error, register
from shapecalc.cli.hf_options import LAYOUT, SOURCE_LEN, config_weights, with_source_len
from shapecalc.cli.models import architecture_options
from shapecalc.cli.options import F, apply, lora_options
from shapecalc.cli.parallel_options import PARALLEL_FLAGS, parallel_options
from shapecalc.cli.train_fit import TRAIN_FLAGS
from shapecalc.core.errors import ShapecalcError

__all__ = ["fit"]

#: the fit options, by keyword
FIT_FLAGS = (
    "gpu",
    "gpus",
    "memory_gb",
    "bandwidth_gbs",
    "tflops",
    "batch",
    "seq_len",
    "dtype",
    "weights",
    "engine",
    "utilization",
    "tensor_split",
    "flash_attn",
    "reserve_gb",
    "efficiency",
    "compute",
    "frontier",
    "formats",
    "plot",
    "fmt",
    *TRAIN_FLAGS,
    *PARALLEL_FLAGS,
)
#: the flags of the fit options whose name is not their keyword's
#: the context fit answers at unless --seq-len says (or the model's own when shorter)
SEQ_LEN = 4096

FLAGS = {
    "memory_gb": "--memory-gb",
    "bandwidth_gbs": "--bandwidth-gbs",
    "seq_len": "--seq-len",
    "reserve_gb": "--reserve-gb",
    "utilization": "--gpu-memory-utilization",
    "tensor_split": "--tensor-split",
}


@click.group("fit", cls=ShapecalcGroup)
def fit() -> None:
    """Does a model fit on an accelerator: the memory of one GPU line by line (weights,
    inference state at --batch × --seq-len, activations, an engine's own lines), the
    largest context, the most sequences, the fewest GPUs, the weights formats that fit,
    and bounds on decode and prefill speed. Exit status 0 when it fits, 1 when not.

    \b
    Example:
      shapecalc fit llama --vocab 128256 --hidden 4096 --layers 32 --heads 32 \\
        --kv-heads 8 --intermediate 14336 --gpu rtx-4090 --seq-len 8192
      shapecalc fit hf meta-llama/Llama-3.1-8B --gpu h100 --engine vllm
    """


#: the options that name the hardware and how the model runs there (``sweep`` takes them)
HARDWARE_FLAGS = (
    "gpu",
    "gpus",
    "memory_gb",
    "bandwidth_gbs",
    "tflops",
    "engine",
    "utilization",
    "tensor_split",
    "flash_attn",
    "reserve_gb",
    "efficiency",
    "compute",
    "frontier",
)


def hardware_options() -> list[Callable[[F], F]]:
    """The options of :data:`HARDWARE_FLAGS`, in that order."""
    from shapecalc.analysis.hardware import COMPUTE_DTYPES
    from shapecalc.core.choices import ENGINES

    return [
        click.option(
            "--gpu",
            default=None,
            metavar="NAME",
            help="An accelerator from the table "
            "(h100, h200, b200, a100-80gb, l40s, l4, rtx-4090, mi300x, m3-max-128gb, "
            "tpu-v5e, ...; docs: Does it fit).",
        ),
        click.option(
            "--gpus",
            type=int,
            default=1,
            show_default=True,
            metavar="N",
            help="GPUs: tensor parallel; under --engine llama.cpp split by layer.",
        ),
        click.option(
            "--memory-gb",
            type=float,
            default=None,
            metavar="X",
            help="Memory of one GPU in decimal GB (10^9 bytes, as given), instead of "
            "--gpu; a driver's total in MiB is MiB × 1.048576 / 1000 GB (81,559 MiB: 85.52).",
        ),
        click.option(
            "--bandwidth-gbs",
            type=float,
            default=None,
            metavar="X",
            help="With --memory-gb: memory bandwidth in GB/s (for the decode bound).",
        ),
        click.option(
            "--tflops",
            type=float,
            default=None,
            metavar="X",
            help="With --memory-gb: dense peak TFLOPs (for the prefill bound).",
        ),
        click.option(
            "--engine",
            type=click.Choice(ENGINES),
            default=None,
            help="A serving engine's own accounting.",
        ),
        click.option(
            "--gpu-memory-utilization",
            "utilization",
            type=float,
            default=0.9,
            show_default=True,
            help="vLLM's share of each GPU's memory.",
        ),
        click.option(
            "--tensor-split",
            default=None,
            metavar="P,P,...",
            help="llama.cpp's -ts: each GPU's proportion of the layers (default: even).",
        ),
        click.option(
            "--flash-attn",
            "flash_attn",
            type=click.Choice(("auto", "on", "off")),
            default=None,
            help="llama.cpp's -fa: auto (its default) turns flash attention on where the "
            "GPU's backend has it (CUDA, ROCm, Metal, Vulkan): the compute buffer holds an "
            "f16 mask, not fp32 scores per head.  [default: auto]",
        ),
        click.option(
            "--reserve-gb",
            type=float,
            default=0.0,
            show_default=True,
            metavar="X",
            help="Memory known to be taken on each GPU (CUDA context, other "
            "processes; vLLM's non-torch memory).",
        ),
        click.option(
            "--efficiency",
            default="1,1",
            show_default=True,
            metavar="M[,C]",
            help="Fractions of the bandwidth and of the peak reached (1: the bound).",
        ),
        click.option(
            "--compute",
            type=click.Choice(COMPUTE_DTYPES),
            default=None,
            help="The dtype of the products for the prefill bound [default: the weights' dtype].",
        ),
        click.option(
            "--frontier",
            is_flag=True,
            help="The largest context at batches 1, 2, 4, ... (the fit frontier).",
        ),
    ]


def fit_options(default_dtype: str | None) -> list[Callable[[F], F]]:
    from shapecalc.core.units import DTYPE_BYTES

    hardware = dict(zip(HARDWARE_FLAGS, hardware_options(), strict=True))
    return [
        *(hardware[k] for k in HARDWARE_FLAGS[:5]),
        click.option(
            "--batch",
            type=int,
            default=1,
            show_default=True,
            metavar="B",
            help="Sequences at once.",
        ),
        click.option(
            "--seq-len",
            type=int,
            default=None,
            metavar="T",
            help="Context per sequence (prompt and output) [default: 4096, or the model's "
            "own context when shorter].",
        ),
        click.option(
            "--dtype",
            type=click.Choice(tuple(DTYPE_BYTES)),
            default=default_dtype,
            show_default=default_dtype is not None,
            help="Weights' (and cache's) dtype"
            + ("" if default_dtype else " [default: the config's, else bf16]")
            + ".",
        ),
        click.option(
            "--weights",
            default=None,
            metavar="FORMAT",
            help="Store the weights quantized (fp8, ...; see --weights of a model command).",
        ),
        *(hardware[k] for k in HARDWARE_FLAGS[5:]),
        click.option("--plot", is_flag=True, help="With --frontier: draw it in the terminal."),
        click.option(
            "--formats",
            is_flag=True,
            help="Price every weights format shapecalc knows (GGUF mixes, bitsandbytes, GPTQ, "
            "AWQ, fp8, ...) and name the least quantized that fits; without it, only the "
            "common formats, and only when the model does not fit as it is.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(("table", "json")),
            default="table",
            show_default=True,
            help="Output format.",
        ),
        click.option(
            "--training",
            type=click.Choice(("sgd", "adam", "adamw", "adamw-8bit", "paged-adamw-8bit")),
            default=None,
            help="Fit a training step with this optimizer: the fewest GPUs, and the memory "
            "of one (FSDP full unless --zero or --fsdp says).",
        ),
        click.option(
            "--mixed-precision",
            is_flag=True,
            help="With --training: fp32 master weights and optimizer state.",
        ),
        *lora_options(),
        *parallel_options(searched=True),
    ]


def _fit_command(command: str) -> click.Command:
    from shapecalc.architectures import get

    cls = get(command)

    @architecture_options(cls)
    @apply(fit_options("bf16"))
    def run(**flags: Any) -> None:
        options = {k: flags.pop(k) for k in FIT_FLAGS}
        try:
            model = cls(**flags).model()
        except ShapecalcError as err:
            raise engine_error(err) from None
        _run(model, options)

    example = f"{cls.example} --gpu h100" if cls.example else ""
    run.__doc__ = (
        f"Does the {cls.title or cls.__name__} fit on an accelerator (exit 0 yes, 1 no)."
        + (f"\n\n    \b\n    Example:\n      shapecalc fit {command} {example}" if example else "")
    )
    return click.command(command, cls=ExampleCommand, example=example)(run)


@click.command("hf")
@click.argument("path")
@click.option(
    "--allow-field",
    "allow",
    multiple=True,
    metavar="FIELD",
    help="Count the model without this config field shapecalc does not know.",
)
@LAYOUT
@SOURCE_LEN
@apply(fit_options(None))
def _hf(
    path: str, allow: tuple[str, ...], layout: str, source_len: int | None, **options: Any
) -> None:
    """Does the model a Hugging Face config.json describes fit (exit 0 yes, 1 no); the
    dtype is the config's unless --dtype says.

    \b
    Example:
      shapecalc fit hf meta-llama/Llama-3.1-8B --gpu h100 --seq-len 32768
    """
    from shapecalc.adapters.hf_config import hf_model

    try:
        found = with_source_len(hf_model(path, allow=allow), source_len)
        model = found.checkpoint_model() if layout == "checkpoint" else found.model()
        options["weights"] = config_weights(found, options["weights"], allow, layout)
    except ShapecalcError as err:
        raise click.BadParameter(err.message, param_hint="'PATH'") from None
    from shapecalc.adapters.hf_context import config_context

    context = config_context(found.config)
    if options["engine"] == "vllm":
        context = _vllm_defaults(found.config, options, context)
    if options["dtype"] is None:
        said = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(found.dtype or "")
        options["dtype"] = said or "bf16"
    _run(model, options, context)


def _vllm_defaults(
    config: dict[str, Any], options: dict[str, Any], context: tuple[int, str] | None
) -> tuple[int, str] | None:
    """What ``vllm serve`` takes from the config when the flags leave it: the dtype of
    ``--dtype auto`` and the default ``--max-model-len`` (the context fit answers at);
    the context searched, vLLM's where it derives a longer one (a RoPE factor)."""
    from shapecalc.analysis.vllm_defaults import vllm_auto_dtype, vllm_max_model_len

    if options["dtype"] is None:
        hardware = _hardware(options)
        bf16 = "bf16" in hardware.peak or not hardware.peak
        options["dtype"], options["vllm_dtype_note"] = vllm_auto_dtype(
            config, bf16, float16=_vllm_float16(config)
        )
    derived = vllm_max_model_len(config, context[0] if context else None)
    if derived is None:
        return context
    if options["seq_len"] is None:
        options["vllm_max_model_len"] = derived
    if context is None or derived[0] > context[0]:
        return derived[0], f"vLLM's max_model_len, {derived[1]}"
    return context


def _vllm_float16(config: dict[str, Any]) -> bool:
    """Whether vLLM runs the config's model type in float16: none of the types it
    declares runs without (:attr:`HFType.vllm_no_float16`)."""
    from shapecalc.architectures import command_for, get

    model_type = str(config.get("model_type", ""))
    command = command_for(model_type)
    types = get(command).hf if command else ()
    return not any(t.vllm_no_float16 for t in types if t.model_type == model_type)


def _efficiency(text: str) -> tuple[float, float]:
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(0 < v <= 1 for v in values):
        raise click.BadParameter(
            f"{text}: give M or M,C, fractions in (0, 1] of the bandwidth and the peak",
            param_hint="'--efficiency'",
        )
    return (values[0], values[-1])


def _hardware(options: dict[str, Any]) -> Any:
    from shapecalc.analysis.hardware import accelerator, custom

    if options["gpu"] and options["memory_gb"] is not None:
        raise click.BadParameter(
            "give --gpu NAME or --memory-gb X, not both", param_hint="'--memory-gb'"
        )
    if options["gpu"]:
        for flag in ("bandwidth_gbs", "tflops"):
            if options[flag] is not None:
                raise click.BadParameter(
                    f"--{flag.replace('_', '-')} goes with --memory-gb, not --gpu",
                    param_hint=f"'--{flag.replace('_', '-')}'",
                )
        return accelerator(options["gpu"])
    if options["memory_gb"] is None:
        raise click.UsageError("give --gpu NAME, or --memory-gb X (with --bandwidth-gbs, --tflops)")
    return custom(options["memory_gb"], options["bandwidth_gbs"], options["tflops"])


def _engine(name: str, *args: Any, **kwargs: Any) -> Any:
    """The engine ``--engine`` names (its module imported only then)."""
    from shapecalc.analysis.engines import engine

    return engine(name, *args, **kwargs)


def fit_setting(
    options: dict[str, Any], context: int | None = None, field: str = "max_position_embeddings"
) -> Any:
    """The :class:`~shapecalc.analysis.sweep_fit.FitSetting` the hardware options say
    (``options`` by :data:`HARDWARE_FLAGS`), each checked: a usage error naming the flag,
    or the engine's error (a GPU not in the table) for the caller to name."""
    from shapecalc.analysis.sweep_fit import FitSetting

    efficiency = _efficiency(options["efficiency"])
    if not 0 < options["utilization"] <= 1:
        raise click.BadParameter(
            f"{options['utilization']:g}: a fraction in (0, 1]",
            param_hint="'--gpu-memory-utilization'",
        )
    if not 0 <= options["reserve_gb"] < 1e9:
        raise click.BadParameter(
            f"{options['reserve_gb']:g}: a number of GB, 0 or more", param_hint="'--reserve-gb'"
        )
    split = _tensor_split(options.get("tensor_split"), options["engine"], options["gpus"])
    flash = options.get("flash_attn")
    if flash is not None and options["engine"] != "llama.cpp":
        raise click.BadParameter(
            f"{flash}: llama.cpp's flash attention: add --engine llama.cpp",
            param_hint="'--flash-attn'",
        )
    return FitSetting(
        _hardware(options),
        gpus=options["gpus"],
        engine=None
        if options["engine"] is None
        else _engine(
            options["engine"],
            options["utilization"],
            flash_attention=flash != "off",
            tensor_split=split,
        ),
        reserve=round(options["reserve_gb"] * 10**9),
        compute=options["compute"],
        efficiency=efficiency,
        max_context=context,
        context_field=field,
    )


def _tensor_split(text: str | None, engine: str | None, gpus: int) -> tuple[float, ...]:
    """``--tensor-split 3,1``'s proportions (llama.cpp's ``-ts``), for llama.cpp only."""
    if text is None:
        return ()
    if engine != "llama.cpp":
        raise click.BadParameter(
            "llama.cpp's split by layer: add --engine llama.cpp", param_hint="'--tensor-split'"
        )
    try:
        values = tuple(float(p) for p in text.replace("/", ",").split(","))
    except ValueError:
        values = ()
    if not values or any(not 0 <= v < float("inf") for v in values) or not any(values):
        raise click.BadParameter(
            f"{text[:40]}: proportions, numbers 0 or more, not all 0 (3,1)",
            param_hint="'--tensor-split'",
        )
    if len(values) > gpus:
        raise click.BadParameter(
            f"{text[:40]}: {len(values)} proportions for --gpus {gpus} (one per GPU at most)",
            param_hint="'--tensor-split'",
        )
    return values


def _run(model: Any, options: dict[str, Any], context: tuple[int, str] | None = None) -> None:
    from shapecalc.analysis.fit import COMMON_FORMATS, answer

    if options["plot"] and not options["frontier"]:
        raise click.BadParameter("--plot draws the frontier: add --frontier", param_hint="'--plot'")
    if options["plot"] and options["fmt"] != "table":
        raise click.BadParameter("--plot draws under the table, not JSON", param_hint="'--plot'")
    if options["training"] is None:
        from shapecalc.cli.parallel_options import given

        lora = [k for k in TRAIN_FLAGS[2:] if options[k] not in (None, False)]
        if options["mixed_precision"] or given(options) or lora:
            raise click.UsageError(
                "--mixed-precision, the LoRA flags and the parallel flags price a training "
                "step: add --training"
            )
    try:
        setting = fit_setting(options, *(context or ()))
        from shapecalc.quant import quantize, weights_option

        chosen = weights_option(options["weights"])  # none: the model as it is
        method = "" if chosen is None else chosen.method.quant_method
        if options["engine"] == "llama.cpp" and method not in ("", "gguf"):
            typed = isinstance(options["weights"], str)
            said = options["weights"] if typed else f"the config's {method}"
            raise click.BadParameter(
                f"--engine llama.cpp loads GGUF files only, and {said} is not one: give a "
                "GGUF type (q4_k_m, q8_0, mxfp4_moe...)"
                + (" or leave --weights out" if typed else " or --weights none"),
                param_hint="'--weights'",
            )
        if chosen is not None:
            model = quantize(model, chosen)
        if options["training"] is not None:
            from shapecalc.cli.train_fit import train_fit

            train_fit(model, options, setting.hardware, setting.reserve)
        vllm_len = options.get("vllm_max_model_len")
        if setting.engine is not None and setting.engine.name == "vllm":
            setting = dataclasses.replace(
                setting,
                engine=dataclasses.replace(
                    setting.engine,
                    dtype_note=options.get("vllm_dtype_note", ""),
                    length_note=vllm_len[1] if vllm_len else "",
                ),
            )
        the_fit = setting.fit(
            model,
            dtype=options["dtype"],
            cache="latent",
            batch=options["batch"],
            seq_len=SEQ_LEN if options["seq_len"] is None else options["seq_len"],
        )
        if vllm_len is not None:  # vllm serve's default max_model_len
            the_fit = dataclasses.replace(the_fit, seq_len=vllm_len[0])
        elif options["seq_len"] is None and the_fit.context is not None:
            the_fit = dataclasses.replace(the_fit, seq_len=min(SEQ_LEN, the_fit.context))
        the_fit.check_context()
        frontier = tuple(2**k for k in range(11)) if options["frontier"] else ()
        formats: bool | tuple[str, ...] = (
            True if options["formats"] else (not the_fit.fits() and COMMON_FORMATS)
        )
        if formats and the_fit.engine is not None and the_fit.engine.name == "llama.cpp":
            formats = _gguf_mixes(formats is True)
        result = answer(the_fit, frontier=frontier, quantizations=formats)
        if options["formats"] and not result.all_formats:  # every mix llama.cpp loads
            result = dataclasses.replace(result, all_formats=True)
    except ShapecalcError as err:
        raise engine_error(err, FLAGS) from None
    if options["fmt"] == "json":
        from shapecalc.report.fit_json import fit_json

        click.echo(fit_json(result), nl=False)
    else:
        from shapecalc.report.rich_writer import echo, fit_table

        echo(fit_table(result))
        if options["plot"]:
            from shapecalc.report.plot import draw_terminal, terminal_width
            from shapecalc.report.rich_writer import FIT_WIDTH

            width = min(terminal_width(), FIT_WIDTH)
            click.echo(draw_terminal([_frontier_bars(result)], width))
    sys.exit(0 if result.fits else 1)


def _gguf_mixes(every: bool) -> tuple[str, ...]:
    """The weights formats llama.cpp loads: llama-quantize's mixes (``q4_k_m``), every one
    or those of the common formats; awq, gptq, nf4 and fp8 are no GGUF file."""
    from shapecalc.analysis.fit import COMMON_FORMATS
    from shapecalc.quant import method_class

    mixes = tuple(method_class("gguf").aliases)
    return mixes if every else tuple(f for f in COMMON_FORMATS if f in mixes)


def _frontier_bars(result: Any) -> Any:
    from shapecalc.report.plot import Bars
    from shapecalc.report.rich_writer import fit_on

    return Bars(
        f"Largest context (positions, log scale) against batch on {fit_on(result.fit)}",
        tuple(f"B={b}" for b, _ in result.frontier),
        tuple(t or 0 for _, t in result.frontier),
        "positions",
        texts=tuple("-" if t is None else f"{t:,}" for _, t in result.frontier),
        log=True,
    )


def _maker(command: str) -> Callable[[], click.Command]:
    return lambda: _fit_command(command)


fit.add_command(_hf, "hf")
register(fit, _maker)
