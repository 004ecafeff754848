"""A GGUF file's header and its check against its architecture, as lines of plain text
(names and values from the file printed as text, their control characters escaped)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shapecalc.core.dims import count_noun
from shapecalc.core.errors import printable
from shapecalc.core.units import human_bytes, human_count
from shapecalc.report.check_text import others_told

if TYPE_CHECKING:
    from shapecalc.adapters.gguf import GGUFFile
    from shapecalc.adapters.gguf_arch import GGUFCheck
    from shapecalc.adapters.targets import Inspection

__all__ = ["gguf_check_lines", "gguf_dict", "gguf_lines"]


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
        + f" · {count_noun(len(file.metadata), 'metadata key')} · alignment {file.alignment}",
        f"  {count_noun(len(file.tensors), 'tensor')} · {file.parameters:,} parameters "
        f"({human_count(file.parameters)}) · {file.nbytes:,} bytes ({human_bytes(file.nbytes)}) "
        f"· {file.bits_per_weight:.3f} bits per weight",
    ]
    for type_name, (n, count, nbytes) in sorted(
        file.by_type().items(), key=lambda item: -item[1][2]
    ):
        bits = 8 * nbytes / count if count else 0.0
        lines.append(
            f"  {type_name:<8} {count_noun(n, 'tensor')} · {count:,} numbers · "
            f"{human_bytes(nbytes)} · {bits:.4g} bits each"
        )
    lines.append("  shapes as torch writes them: GGUF's ne reversed")
    return lines


def _first(config: Mapping[str, Any], *keys: str) -> Any:
    """The first of these config keys there (GPT-2's config says n_layer, n_embd)."""
    return next((config[k] for k in keys if k in config), None)


def gguf_check_lines(check: GGUFCheck) -> list[str]:
    """The file against its architecture: what matched, then every tensor missing,
    unexpected or of another shape, and the verdict."""
    implied = check.matched + len(check.wrong_shape) + len(check.missing)
    lines = [
        f"Against its metadata: {check.architecture} as transformers' {check.model_type} "
        f"(layers {_first(check.config, 'num_hidden_layers', 'n_layer')}, hidden "
        f"{_first(check.config, 'hidden_size', 'n_embd')}, vocab "
        f"{check.config.get('vocab_size')})",
        # the numbers are those of every tensor the metadata implies, the missing too
        f"  matched   {check.matched:,} of the {implied:,} tensors the metadata "
        f"implies{others_told(len(check.wrong_shape), 0)}; "
        + ("the one" if implied == 1 else f"all {implied:,}")
        + f" {'holds' if implied == 1 else 'hold'} {check.expected_total:,} numbers "
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


def _json_value(value: Any) -> Any:
    """A metadata value as JSON: an array as its type and length, a float that JSON
    cannot write (nan, inf) as text."""
    from shapecalc.adapters.gguf import GGUFArray

    if isinstance(value, GGUFArray):
        return {"array_of": value.item_type, "length": value.length}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def gguf_dict(inspection: Inspection) -> dict[str, Any]:
    """``inspect FILE.gguf --format json``'s ``gguf`` object: the header, each type's
    share, and the check against the architecture (or why there is none)."""
    file = inspection.gguf
    assert file is not None
    out: dict[str, Any] = {
        "version": file.version,
        "byte_order": file.byte_order,
        "alignment": file.alignment,
        "architecture": file.architecture,
        "tensors": len(file.tensors),
        "parameters": file.parameters,
        "bytes": file.nbytes,
        "bits_per_weight": round(file.bits_per_weight, 6),
        "by_type": {
            name: {"tensors": n, "numbers": count, "bytes": nbytes}
            for name, (n, count, nbytes) in file.by_type().items()
        },
        "metadata": {k: _json_value(v) for k, v in file.metadata.items()},
    }
    check = inspection.gguf_check
    if check is not None:
        out["check"] = {
            "ok": check.ok,
            "model_type": check.model_type,
            "config": check.config,
            "expected_total": check.expected_total,
            "matched": check.matched,
            "missing": [
                {"name": n, "shape": list(s), "transformers": src} for n, s, src in check.missing
            ],
            "unexpected": [
                {"name": n, "shape": list(s), "type": t} for n, s, t in check.unexpected
            ],
            "wrong_shape": [
                {"name": n, "expected": list(w), "found": list(f), "transformers": src}
                for n, w, f, src in check.wrong_shape
            ],
            "notes": list(check.notes),
        }
    elif inspection.gguf_unchecked is not None:
        out["unchecked"] = inspection.gguf_unchecked
    return out
