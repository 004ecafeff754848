"""bitsandbytes' 8-bit AdamW state, tensor by tensor, as ``Optimizer2State.init_state``
stores it (``bitsandbytes/optim/optimizer.py``): for a trained tensor of n numbers,
n >= ``min_8bit_size`` (4096), ``state1`` and ``state2`` in uint8 (n bytes each) and
``absmax1`` and ``absmax2`` in fp32, one per block of 256 numbers (4·⌈n/256⌉ bytes
each); a smaller tensor keeps both states in fp32 (8·n bytes); and the two quantization
maps ``qmap1`` and ``qmap2`` (256 fp32 each, ``create_dynamic_map``), one pair shared by
every tensor. The paged optimizer stores the same tensors in paged (unified) memory,
which the driver may move to the host under pressure; it holds the same bytes."""

from __future__ import annotations

from collections.abc import Iterable

from shapecalc.core.dims import Dim, known, product

__all__ = ["BLOCK", "EIGHT_BIT", "MIN_8BIT_SIZE", "QMAP_BYTES", "eight_bit_bytes", "tensor_bytes"]

#: the optimizers, by their ``--training`` names -> the bitsandbytes class
EIGHT_BIT = {"adamw-8bit": "AdamW8bit", "paged-adamw-8bit": "PagedAdamW8bit"}
#: ``min_8bit_size``'s default (``bitsandbytes/optim/adamw.py``)
MIN_8BIT_SIZE = 4096
#: the block of numbers one absmax scales (``init_state``: ``blocksize = 256``)
BLOCK = 256
#: ``qmap1`` and ``qmap2``: 256 fp32 numbers each, shared by every tensor
QMAP_BYTES = 2 * 256 * 4


def tensor_bytes(n: int) -> int:
    """The state bytes of one trained tensor of ``n`` numbers (the maps apart)."""
    if n < MIN_8BIT_SIZE:
        return 2 * 4 * n
    return 2 * n + 2 * 4 * -(-n // BLOCK)


def eight_bit_bytes(tensors: Iterable[tuple[tuple[Dim, ...], Dim]]) -> int | None:
    """The state of every trained tensor, each given as (shape, how many there are), and
    the maps once if any tensor's state is 8-bit; None when a size is a name (the
    4096 threshold and the blocks need numbers)."""
    total = 0
    eight = False
    for shape, copies in tensors:
        n, many = known(product(shape)), known(copies)
        if n is None or many is None:
            return None
        total += many * tensor_bytes(n)
        eight = eight or n >= MIN_8BIT_SIZE
    return total + (QMAP_BYTES if eight else 0)
