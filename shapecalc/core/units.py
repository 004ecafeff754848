"""Human units for counts and bytes, with exact integer arithmetic at any size.

Example:

    >>> human_count(4_269_121)
    '4.27 M'
    >>> human_bytes(17_076_484)
    '17.1 MB'
    >>> human_count(3 * 10**21)
    '3.00e21'
    >>> human_flops(847_673_700)
    '848 MFLOPs'
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from decimal import Context

__all__ = ["DTYPE_BYTES", "human_bytes", "human_count", "human_flops"]

#: bytes per number for the storage types shapecalc reports
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "fp8": 1}

_COUNT_UNITS = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "k"))
_FLOP_UNITS = (
    (10**18, "EFLOPs"),
    (10**15, "PFLOPs"),
    (10**12, "TFLOPs"),
    (10**9, "GFLOPs"),
    (10**6, "MFLOPs"),
    (10**3, "kFLOPs"),
)
_BYTE_UNITS = (
    (10**18, "EB"),
    (10**15, "PB"),
    (10**12, "TB"),
    (10**9, "GB"),
    (10**6, "MB"),
    (10**3, "kB"),
)


@cache
def _three_digits() -> Context:
    """Three significant digits, rounded half to even (decimal is imported only when a
    number is written in units: a JSON report writes none)."""
    from decimal import ROUND_HALF_EVEN, Context

    return Context(prec=3, rounding=ROUND_HALF_EVEN)


def _scaled(n: int, units: tuple[tuple[int, str], ...], plain: str) -> str:
    if n < 0:
        return "-" + _scaled(-n, units, plain)
    if n < units[-1][0]:
        return f"{n}{plain}"
    from decimal import Decimal

    rounded = _three_digits().plus(Decimal(n))  # round first: 999,999 is 1.00 M, not 1000 k
    for size, name in units:
        if rounded >= size:
            value = rounded / size
            if value >= 1000:
                break
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f} {name}"
    return f"{rounded:.2e}".replace("e+", "e")


def human_count(n: int) -> str:
    """Three significant digits with k, M, B, T; scientific notation past 999 T."""
    return _scaled(n, _COUNT_UNITS, "")


def human_bytes(n: int) -> str:
    """Decimal units (kB = 1000 bytes), three significant digits."""
    return _scaled(n, _BYTE_UNITS, " B")


def human_flops(n: int) -> str:
    """FLOPs in decimal units (k, M, G, T, P, E), three significant digits."""
    return _scaled(n, _FLOP_UNITS, " FLOPs")
