"""From a model to the report every command prints, in one library call.

:func:`build_report` computes each part once: the cost (one analysis, whose input ranks
the ONNX convention reuses), the tensors in another framework's convention and their
symbolic twin, the explanation in that convention, and with ``verify`` the comparison
with the real module. It returns the :class:`~shapecalc.report.Report` that the command
line writes, so a program gets exactly what ``shapecalc`` prints and hands it to the
same writers (:func:`shapecalc.report.text`, ``shapecalc.report.rich_writer``):

    >>> import shapecalc
    >>> from shapecalc.report import text
    >>> model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    >>> report = build_report(model, memory=True, batch=1, seq_len=100, convention="keras")
    >>> report.convention_name, report.shown["memory"]
    ('keras', True)
    >>> text(report, "json") == text(build_report(model, memory=True, batch=1, seq_len=100,
    ...                                           convention="keras"), "json")
    True

An error of one part names it in ``err.argument`` ("cost", "convention", "verify",
"against").
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shapecalc.core.dims import Expr
from shapecalc.core.errors import (
    InvalidArgumentError,
    MissingDependencyError,
    ShapecalcError,
    expect,
    field_error,
    printable,
)
from shapecalc.core.model import Model
from shapecalc.core.spec import Shape
from shapecalc.report import Report, Verification

if TYPE_CHECKING:
    from shapecalc.analysis.conventions import Converted
    from shapecalc.analysis.cost import Cost
    from shapecalc.core.declare import Reference

__all__ = ["MOST_MODULES", "MOST_TENSORS", "build_report", "check_buildable"]

#: the modules and tensors ``verify`` builds in seconds on the meta device
MOST_MODULES, MOST_TENSORS = 10_000, 20_000


@contextmanager
def _part(argument: str) -> Iterator[None]:
    """Errors raised inside name the part of the report they came from."""
    try:
        yield
    except ShapecalcError as err:
        err.argument = argument
        raise


def build_report(
    model: Model,
    *,
    shapes: bool = False,
    flops: bool = False,
    memory: bool = False,
    inputs: Sequence[Shape] | None = None,
    outputs: Sequence[Shape] = (),
    batch: Any = "B",
    seq_len: Any = "T",
    dtype: str = "fp32",
    training: str | None = "adam",
    mixed_precision: bool = False,
    cache: str = "latent",
    convention: str = "pytorch",
    reset_after: bool = True,
    explain: bool = False,
    depth: int | None = None,
    verify: bool = False,
    reference: Reference | None = None,
    against: str | None = None,
    weights: Any = None,
    adapter: Any = None,
    parallel: Any = None,
    accounting: Any = "shapecalc",
) -> Report:
    """The report of ``model``, each part computed once.

    ``shapes``, ``flops``, ``memory``: the cost sections to show (one analysis of the
    input ``inputs``, or of the model's own input layout at ``batch`` and ``seq_len``,
    priced in ``dtype`` with ``training``'s optimizer state (None: adam, or none for a
    model nothing of which trains, a GGUF mix's) and ``mixed_precision``;
    ``cache``: how latent attention's cache is counted, ``"latent"`` or ``"heads"``).
    ``convention``: the tensors as Keras or ONNX store them (``reset_after``: Keras'
    GRU). ``explain``: the explanation sections. ``inputs`` and ``outputs`` without a cost
    section: a layer's shapes, shown as they are. ``depth``: names longer than this many
    parts summed into their node. ``verify``: build the real module on the meta device
    (the ``transformers`` class of the same configuration when there is one, or
    ``reference``) and compare every name and shape (``report.verification``).
    ``against``: a checkpoint file's path (``.safetensors``, ``.pt``, ``.bin``), whose
    every name and shape is compared with the model's (``report.against``).
    ``weights``: the model's weights stored quantized, a :class:`~shapecalc.quant.
    Quantization` or ``--weights`` text (``nf4``, ``fp8``, ``gptq:bits=8``): the rows
    are the stored tensors, the bytes theirs. ``adapter``: a LoRA adapter on the frozen
    model (a :class:`~shapecalc.adapt.LoraConfig`), on the quantized weights if any
    (QLoRA). ``parallel``: a :class:`~shapecalc.analysis.parallel_plan.ParallelPlan`
    whose per-GPU training memory the report adds (``report.per_gpu``, priced by
    ``accounting``: ``shapecalc`` or ``deepspeed``; the memory section with it)."""
    expect(model, Model, function="build_report", argument="model", what="a shapecalc Model")
    if weights is not None:
        from shapecalc.quant import quantize, weights_option

        with _part("weights"):
            chosen = weights_option(weights)  # --weights none: the model as it is
            if chosen is not None:
                model = quantize(model, chosen)
    plain = model  # what --verify builds: the model without the adapter
    if adapter is not None:
        from shapecalc.adapt import lora

        with _part("lora"):
            model = lora(model, adapter)
    if training is None:  # the default: adam, but no training of a model nothing trains
        from shapecalc.core.dims import known

        nothing = known(model.trainable) == 0 and known(model.total) != 0
        training = "none" if nothing else "adam"
    if verify:
        with _part("verify"):  # a quantized model: its unquantized twin is the module's
            check_buildable(plain.unquantized or plain)
    sections = (shapes, flops, memory or parallel is not None)
    cost: Cost | None = None
    if any(sections):
        from shapecalc.analysis.cost import analyze

        with _part("cost"):
            cost = analyze(
                model,
                None if inputs is None else tuple(inputs),
                batch=batch,
                seq_len=seq_len,
                dtype=dtype,
                training=training,
                mixed_precision=mixed_precision,
                cache=cache,
            )
    gpu = None
    split = None
    if parallel is not None and cost is not None:
        from shapecalc.analysis.parallel import per_gpu

        with _part("parallel"):
            gpu = per_gpu(cost, parallel, accounting)
        from shapecalc.analysis.model_parallel import model_parallel, splits_model

        if shapes and splits_model(parallel):  # each tensor's shape on the most loaded rank
            with _part("parallel"):
                split = model_parallel(
                    model, parallel, cost.batch, cost.seq_len, cost.activation_itemsize
                )
    converted: tuple[Converted, Converted | None] | None = None
    if convention != "pytorch":
        from shapecalc.analysis.conventions import convert_with_template, input_ranks

        with _part("convention"):
            # the ranks from the cost's analysis, when it followed the model's own layout
            ranks = input_ranks(model, cost if inputs is None else None)
            converted = convert_with_template(
                model, convention, reset_after=reset_after, ranks=ranks
            )
    explanation: tuple[Any, ...] = ()
    if explain:
        from shapecalc.analysis.explain import explain as sections_of

        with _part("explain"):
            explanation = tuple(sections_of(model, convention))
            if gpu is not None:
                from shapecalc.analysis.explain import Section
                from shapecalc.analysis.parallel import explain as per_gpu_lines

                explanation += (Section(gpu.title, per_gpu_lines(gpu)),)
    verification = None
    if verify:
        with _part("verify"):
            verification = _verify(plain.unquantized or plain, reference)
            if plain.quantization is not None:
                verification = dataclasses.replace(
                    verification,
                    note=f"{verification.note} (the unquantized model; the stored tensors "
                    "are checked by `shapecalc inspect FOLDER`)",
                )
    checked = None
    if against is not None:
        from shapecalc.adapters.torch_compare import compare

        with _part("against"):
            if model.symbolic:
                raise field_error(
                    "against",
                    printable(os.fspath(against)),
                    "every size a number",
                    "a file's tensors have numbers for shapes: give every size a number",
                )
            checked = Verification(printable(os.fspath(against)), "", compare(model, against))
    flow = (tuple(inputs), tuple(outputs)) if inputs and not shapes else None
    return Report(
        model,
        cost=cost,
        sections=sections,
        convention=converted,
        explanation=explanation,
        flow=flow,
        depth=depth,
        verification=verification,
        against=checked,
        per_gpu=gpu,
        model_parallel=split,
    )


def check_buildable(model: Model) -> None:
    """Refuse what torch cannot build, or not in seconds: a size that is a name, anything
    without torch installed, a tensor of 2^63 numbers or more, more modules than
    :data:`MOST_MODULES` or tensors than :data:`MOST_TENSORS`."""
    import importlib.util

    if model.symbolic:
        names = [k for k, v in model.sizes.items() if isinstance(v, Expr)] or ["a size"]
        raise field_error(
            "verify",
            names[0],
            "every size a number",
            f"the real module needs every size as a number, and {', '.join(names)} "
            f"{'is a name' if len(names) == 1 else 'are names'}",
        )
    if importlib.util.find_spec("torch") is None:
        raise MissingDependencyError(
            "this needs PyTorch, which is not installed; install it with pip install "
            "'shapecalc[torch]' (for the CPU build, first pip install torch "
            "--index-url https://download.pytorch.org/whl/cpu)",
            field="torch",
            rule="PyTorch must be installed",
        )
    modules = 0
    for layer in model.layers:
        copies = layer.copies
        if not isinstance(copies, int) or copies >= MOST_MODULES:
            modules = MOST_MODULES + 1
            break
        modules += copies
    tensors = model.tensor_count()
    if modules > MOST_MODULES or not isinstance(tensors, int) or tensors > MOST_TENSORS:
        raise field_error(
            "verify",
            True,
            f"at most {MOST_MODULES:,} modules and {MOST_TENSORS:,} tensors",
            f"it builds every module on the meta device, and this model has more than "
            f"{MOST_MODULES:,} modules or {MOST_TENSORS:,} tensors; the same block with fewer "
            "layers checks the same names and shapes",
        )
    for row in model.rows():
        count = row.count
        if isinstance(count, int) and count >= 2**63:
            raise field_error(
                "verify",
                row.name,
                "at most 2^63 - 1 numbers in a tensor",
                f"torch holds at most 2^63 - 1 numbers in a tensor, and {row.name} would hold more",
            )


def _verify(model: Model, reference: Reference | None) -> Verification:
    """Compare with the real module: ``reference`` when given, else the class of another
    library the model's configuration names, else the module shapecalc builds."""
    from shapecalc.adapters.torch_bridge import build, build_reference, compare, load_torch

    if reference is None and model.config is not None:
        reference = model.config.reference()
    torch = load_torch()
    module, where, note = None, f"torch {torch.__version__}, meta device", ""
    if reference is not None:
        try:
            module = build_reference(reference)
            version = sys.modules[reference.library].__version__
            where = f"{reference.library} {version} {reference.model}, meta device"
        except MissingDependencyError:  # the library, not torch: torch is here
            note = f" ({reference.library} is not installed: the module shapecalc builds)"
        except InvalidArgumentError as err:
            if err.field != reference.library:
                raise
            note = f" ({err.message}; the module shapecalc builds)"
    elif model.config is not None and _has_references(model):
        note = " (no transformers class has this combination of flags)"
    diff = compare(model, build(model) if module is None else module)
    return Verification(where, note, diff)


def _has_references(model: Model) -> bool:
    """Whether the model's architecture names classes of another library for some of its
    configurations (it declares Hugging Face types, or overrides
    :meth:`~shapecalc.core.declare.Architecture.reference`)."""
    from shapecalc.core.declare import Architecture

    cls = type(model.config)
    return bool(cls.hf) or cls.reference is not Architecture.reference
