"""A checkpoint folder against its config, as lines of plain text (names from files are
printed as they are, never as markup, their control characters escaped)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shapecalc.core.errors import printable
from shapecalc.core.units import human_count

if TYPE_CHECKING:
    from shapecalc.adapters.hf_checkpoint import FolderCheck

__all__ = ["check_lines"]


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def others_told(shape: int, dtype: int) -> str:
    """Beside a count of the tensors that agree, those stored but of another shape or
    dtype: `` (1 of the wrong shape)``, or nothing."""
    counts = [(shape, "of the wrong shape"), (dtype, "of another dtype")]
    said = ", ".join(f"{n:,} {what}" for n, what in counts if n)
    return f" ({said} beside them)" if said else ""


def check_lines(check: FolderCheck) -> list[str]:
    """The account: what was matched, renamed, left out or dropped as transformers loads
    it, then every tensor that does not agree, and the verdict."""
    hf = check.hf
    lines = [
        f"Against its config.json: {hf.class_name} (model_type {hf.family.model_type}), "
        + (
            "names as transformers loads them"
            if check.layout == "transformers"
            else "the experts as checkpoint files hold them, not as transformers fuses them"
        ),
        f"  matched   {check.matched:,} tensors"
        f"{others_told(len(check.wrong_shape), len(check.wrong_dtype))} · "
        f"{check.stored_total:,} numbers stored "
        f"({human_count(check.stored_total)}), {check.expected_total:,} implied by the config "
        f"({human_count(check.expected_total)})"
        + (f" · dtype {check.dtype}" if check.dtype else ""),
    ]
    for note in check.notes:
        lines.append(f"  note      {note}")
    for old, new in check.renamed[:5]:
        lines.append(f"  renamed   {printable(old)} -> {printable(new)} (as transformers loads it)")
    if len(check.renamed) > 5:
        lines.append(f"  renamed   ... and {len(check.renamed) - 5:,} more the same way")
    for name in check.tied_absent:
        lines.append(f"  tied      {printable(name)}: not stored, it shares another tensor")
    for name, first in check.tied_copies:
        lines.append(
            f"  tied      {printable(name)}: stored again beside {printable(first)}, "
            "loaded as one tensor, counted once"
        )
    if check.ignored:
        shown = ", ".join(printable(n) for n in check.ignored[:3])
        more = f" and {len(check.ignored) - 3:,} more" if len(check.ignored) > 3 else ""
        lines.append(f"  ignored   {shown}{more}: buffers transformers drops on load")
    if check.held:
        shown = ", ".join(printable(n) for n in check.held[:3])
        more = f" and {len(check.held) - 3:,} more" if len(check.held) > 3 else ""
        lines.append(
            f"  held      {shown}{more}: held by the checkpoint, not loaded by transformers "
            "(multi-token prediction layers; the shapes of their known tensors checked)"
        )
    if check.quantized:
        stored = sum(len(parts) for _, parts in check.quantized)
        lines.append(
            f"  quantized {len(check.quantized):,} weights of linear layers, stored as "
            f"{stored:,} tensors of the quantization"
        )
    for problem in check.index_problems:  # a missing shard: the cause before the rest
        lines.append(f"  index       {printable(problem)}")
    for name, shape in check.missing:
        lines.append(f"  missing     {printable(name)} {_shape(shape)}")
    for name, shape, dtype in check.unexpected:
        lines.append(f"  unexpected  {printable(name)} {_shape(shape)} {dtype}")
    for m in check.wrong_shape:
        lines.append(
            f"  wrong shape {printable(m.name)}: the config implies {_shape(m.expected)}, "
            f"the file holds {_shape(m.found)}"
        )
    for m in check.wrong_dtype:
        lines.append(
            f"  dtype       {printable(m.name)}: the config says {m.expected}, "
            f"the file holds {m.found}"
        )
    if check.ok:
        lines.append("The checkpoint agrees with its config.")
    else:
        counts = [
            (len(check.missing), "missing"),
            (len(check.unexpected), "unexpected"),
            (len(check.wrong_shape), "of the wrong shape"),
            (len(check.wrong_dtype), "of another dtype"),
            (
                len(check.index_problems),
                "index problem" if len(check.index_problems) == 1 else "index problems",
            ),
        ]
        said = ", ".join(f"{n:,} {what}" for n, what in counts if n)
        lines.append(f"The checkpoint does not agree with its config: {said}.")
    return lines
