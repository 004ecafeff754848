"""A GGUF file's header and its check against its architecture, as lines of plain text
(names and values from the file printed as text, their control characters escaped)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shapecalc.core.errors import printable
from shapecalc.core.units import human_bytes, human_count

if TYPE_CHECKING:
    from shapecalc.adapters.gguf import GGUFFile
    from shapecalc.adapters.gguf_arch import GGUFCheck

__all__ = ["gguf_check_lines", "gguf_lines"]


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def gguf_lines(file: GGUFFile) -> list[str]:
    """The header in a few lines: version, architecture, the parameters and bytes, the
    bits per weight, and each ggml type's share."""
    arch = printable(file.architecture or "none named")[:60]
    name = file.metadata.get("general.name")
    lines = [
        f"GGUF v{file.version} ({file.byte_order}-endian) · architecture {arch}"
        + (f" · {printable(name)[:60]}" if isinstance(name, str) else "")
        + f" · {len(file.metadata):,} metadata keys · alignment {file.alignment}",
        f"  {len(file.tensors):,} tensors · {file.parameters:,} parameters "
        f"({human_count(file.parameters)}) · {file.nbytes:,} bytes ({human_bytes(file.nbytes)}) "
        f"· {file.bits_per_weight:.3f} bits per weight",
    ]
    for type_name, (n, count, nbytes) in sorted(
        file.by_type().items(), key=lambda item: -item[1][2]
    ):
        bits = 8 * nbytes / count if count else 0.0
        lines.append(
            f"  {type_name:<8} {n:,} tensors · {count:,} numbers · {human_bytes(nbytes)} "
            f"· {bits:.4g} bits each"
        )
    lines.append("  shapes as torch writes them: GGUF's ne reversed")
    return lines


def gguf_check_lines(check: GGUFCheck) -> list[str]:
    """The file against its architecture: what matched, then every tensor missing,
    unexpected or of another shape, and the verdict."""
    lines = [
        f"Against its metadata: {check.architecture} as transformers' {check.model_type} "
        f"(layers {check.config.get('num_hidden_layers')}, hidden "
        f"{check.config.get('hidden_size')}, vocab {check.config.get('vocab_size')})",
        f"  matched   {check.matched:,} tensors · {check.expected_total:,} numbers implied "
        f"({human_count(check.expected_total)})",
    ]
    lines += [f"  note      {printable(n)}" for n in check.notes]
    for name, shape, source in check.missing:
        lines.append(f"  missing     {printable(name)} {_shape(shape)} ({source})")
    for name, shape, dtype in check.unexpected:
        lines.append(f"  unexpected  {printable(name)} {_shape(shape)} {dtype}")
    for name, want, found, source in check.wrong_shape:
        lines.append(
            f"  wrong shape {printable(name)} ({source}): the metadata implies {_shape(want)}, "
            f"the file holds {_shape(found)}"
        )
    if check.ok:
        lines.append("The file agrees with its metadata.")
    else:
        counts = [
            (len(check.missing), "missing"),
            (len(check.unexpected), "unexpected"),
            (len(check.wrong_shape), "of the wrong shape"),
        ]
        said = ", ".join(f"{n:,} {what}" for n, what in counts if n)
        lines.append(f"The file does not agree with its metadata: {said}.")
    return lines
