"""What FSDP2 (``torch.distributed.fsdp.fully_shard``) holds unsharded while a training
step computes: the peak, over the forward and the backward, of the bytes of its
transient tensors, walked through as torch 2.13 allocates and frees them.

The model is wrapped as transformers and accelerate wrap a decoder for FSDP2
(``transformers/distributed/fsdp.py``, ``apply_fully_sharded_data_parallelism`` with the
base ``_fsdp_plan`` ``embed_tokens`` / ``layers.*`` / ``norm``, and
``accelerate/utils/fsdp_utils.py``, ``fsdp2_prepare_model``):

- the input embedding a unit of its own, resharded after forward (a tied embedding
  joins the tail instead);
- each repeated block a unit, resharded after forward;
- the tail: the final norm and the output head grouped in one ``fully_shard([...])``
  with ``reshard_after_forward=False``;
- the root with whatever is left, ``reshard_after_forward`` unset: FSDP2 does not
  reshard the root after forward (``_fsdp_state.py``, ``_lazy_init``).

Under ``grad-op`` every unit keeps its parameters from its forward to its backward.
``reshard_after_forward`` as a number of ranks R (``reshard_to``) keeps, from a resharded
unit's forward to its backward's all-gather, each rank's 1/R of the padded parameters
(``_fsdp_param.py``, ``to_sharded_post_forward``: cloned out of the all-gather output,
freed by ``to_unsharded`` after the backward's copy-out): counted too.

What is counted, each at the unit's padded size (every tensor ``⌈d₀/N⌉·N`` rows, as
``_fsdp_param.py`` allocates ``all_gather_outputs`` and ``_fsdp_collectives.py``
``foreach_reduce`` pads ``reduce_scatter_input``):

- a unit's unsharded parameters, from its all-gather's copy-out to its reshard;
- its all-gather output buffer: in the forward kept until the next unit has copied out
  (``comm_ctx.all_gather_state``, the implicit prefetch's overlap); in the backward the
  next unit's all-gather is issued as the unit's backward starts (``_backward_prefetch``:
  the unit before it in the forward) and freed at its own copy-out;
- the unsharded gradients (unpadded, trained tensors only) from the unit's backward to
  its reduce-scatter's copy-in (the root's and the first unit's, whose input needs no
  gradient, until the end of the backward: ``_root_post_backward_final_callback``);
- the reduce-scatter input buffer, kept until the next unit's reduce-scatter
  (``reduce_scatter_states``, one by default).

Not counted: the sharded gradients and what the reduce-scatter writes them from (the
gradients line), HSDP's all-reduce buffer (sharded), autograd's temporaries, the
activations, and the caching allocator's free blocks and fragmentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shapecalc.analysis.parallel import Tensor
    from shapecalc.core.model import Model

__all__ = ["Gathered", "Unit", "fsdp_units", "gathered_peak"]

_RUN = re.compile(r"\.(\{[^}]*\}|\d+)(?=\.|$)")


@dataclass(frozen=True)
class Unit:
    """One ``fully_shard`` unit as a step sees it; sizes in numbers."""

    name: str
    #: the numbers gathered: every tensor padded to ⌈d₀/N⌉·N rows
    numbers: int
    #: the unsharded gradients: the trained tensors, unpadded
    grads: int
    #: the reduce-scatter input: the trained tensors, padded
    reduced: int
    #: resharded after its forward
    reshard: bool
    #: where its forward starts and ends (for the forward and post-forward orders)
    first: tuple[int, int]
    last: tuple[int, int]
    #: its post-backward waits for the end of the backward: the root, and the unit
    #: that takes the model's input (which needs no gradient, so no hook fires on it)
    deferred: bool = False
    #: resharded after forward to this many ranks (``reshard_after_forward=R``): each
    #: keeps 1/R of the gathered numbers until the backward; 0: to all N
    post_forward: int = 0


@dataclass(frozen=True)
class Gathered:
    """The peak: its bytes, the step it is reached at, and what is alive then."""

    bytes: int
    at: str
    #: (unit, what, bytes) alive at the peak
    held: tuple[tuple[str, str, int], ...]

    def describe(self, itemsize: int, mode: str) -> str:
        """The account's rule: where the peak is and what is alive then."""
        units: dict[str, list[str]] = {}
        for unit, what, _ in self.held:
            units.setdefault(unit, []).append(what)
        held = "; ".join(f"{unit}'s {' and '.join(whats)}" for unit, whats in units.items())
        how = "every unit kept to its backward" if mode == "grad-op" else "one unit at a time"
        return (
            f"FSDP2's unsharded tensors at their peak, {self.at}: {held} ({how}, "
            f"{itemsize} bytes each, rows padded to a multiple of N)"
        )


class _Sizes:
    """A unit's sizes as its tensors are added."""

    def __init__(self, reshard: bool) -> None:
        self.reshard = reshard
        self.numbers = self.grads = self.reduced = 0
        self.at: list[tuple[int, int]] = []

    def add(self, t: Tensor, copies: int, padded: int, at: tuple[int, int]) -> None:
        self.numbers += copies * padded
        if t.trainable:
            self.grads += copies * t.numel
            self.reduced += copies * padded
        self.at.append(at)


def _normal(name: str) -> str:
    return _RUN.sub(".#", name)


def fsdp_units(
    model: Model, ts: Sequence[Tensor], n: int, mode: str, reshard_to: int = 0
) -> list[Unit]:
    """The units of the wrap (see the module) over ``ts`` (named tensors, shared ones
    once), in forward order; ``mode``: ``full``, ``hybrid`` or ``grad-op``;
    ``reshard_to``: ``reshard_after_forward`` as a number of ranks (a divisor of ``n``;
    ``n`` is True, 1 False, 0 the mode's)."""
    if reshard_to and (reshard_to < 0 or n % reshard_to or mode != "full"):
        from shapecalc.analysis.parallel_plan import plan_error

        raise plan_error(
            "reshard_to",
            reshard_to,
            f"reshard_after_forward as ranks must divide the {n} ranks, under full sharding",
        )
    if reshard_to == 1:  # FSDP2 takes 1 as False
        mode = "grad-op"
    from shapecalc.analysis.cost import layer_part

    layers = list(model.layers)
    by_name = {_normal(layer.name): i for i, layer in reversed(list(enumerate(layers)))}

    def position(name: str) -> int:
        """The layer a tensor is a parameter of (the longest layer name before it)."""
        parts = _normal(name).split(".")
        for k in range(len(parts) - 1, 0, -1):
            found = by_name.get(".".join(parts[:k]))
            if found is not None:
                return found
        return -1

    in_run = [bool(_RUN.search(layer.name)) for layer in layers]
    runs = [i for i, r in enumerate(in_run) if r]
    first_run = runs[0] if runs else len(layers)
    last_run = runs[-1] if runs else -1
    tied = set(model.ties.values())
    head = _normal(model.head) if model.head else None

    def holds_tied(i: int) -> bool:
        return any(t.startswith(layers[i].name + ".") for t in tied)

    # the input embedding (``get_input_embeddings``): the table the head is tied to,
    # else the first embedding before the blocks
    embeddings = [
        i for i in range(min(first_run, len(layers))) if layers[i].spec.kind == "Embedding"
    ]
    embed = next((i for i in embeddings if holds_tied(i)), embeddings[0] if embeddings else None)
    embed_tied = embed is not None and holds_tied(embed)
    norm = max(
        (
            i
            for i, layer in enumerate(layers)
            if i > last_run and not in_run[i] and "Norm" in layer.spec.kind
        ),
        default=None,
    )
    grouped: dict[str, _Sizes] = {}
    again = mode != "grad-op"
    for t in ts:
        where = position(t.name)
        rows = t.rows
        padded = -(-rows // n) * n * (t.numel // rows if rows else 0) if t.shape else n
        prefix, numbers = layer_part(t.name)
        if numbers is not None and where >= 0 and in_run[where]:
            indices = [numbers] if isinstance(numbers, int) else list(numbers)
            for copy, index in enumerate(indices):
                name = re.sub(r"(\{[^}]*\}|\d+)$", str(index), prefix)
                sizes = grouped.setdefault(name, _Sizes(again))
                sizes.add(t, t.copies // len(indices), padded, (where, copy))
            continue
        tail = where == norm or (where == embed and embed_tied)
        if tail or (head is not None and _normal(t.name).startswith(head + ".")):
            key = "tail"
        else:
            key = "embed" if where == embed else "root"
        grouped.setdefault(key, _Sizes(again and key == "embed")).add(
            t, t.copies, padded, (where, 0)
        )
    parts = (("embedding", embed_tied), ("final norm", norm is not None), ("head", bool(head)))
    names = {
        "tail": " + ".join(part for part, present in parts if present),
        "embed": layers[embed].name if embed is not None else "the embedding",
        "root": "the root",
    }
    start = next((i for i, layer in enumerate(layers) if any(layer.spec.params())), -1)
    out = []
    for key, sizes in grouped.items():
        if key == "root":  # the root's pre-forward runs first, its post-forward last
            first, last = (-1, 0), (len(layers), 0)
        else:
            first, last = min(sizes.at), max(sizes.at)
        out.append(
            Unit(
                names.get(key, key),
                sizes.numbers,
                sizes.grads,
                sizes.reduced,
                sizes.reshard,
                first,
                last,
                key == "root" or (start, 0) in sizes.at,
                reshard_to if sizes.reshard and 1 < reshard_to < n else 0,
            )
        )
    return sorted(out, key=lambda u: u.first)


def gathered_peak(units: Sequence[Unit], itemsize: int, reduce_itemsize: int) -> Gathered:
    """Walk a step through ``units`` (forward order) as FSDP2 allocates and frees (see
    the module): parameters and gradients at ``itemsize`` bytes (the compute dtype,
    ``MixedPrecisionPolicy.param_dtype``), the reduce-scatter input at
    ``reduce_itemsize`` (``reduce_dtype``, the compute dtype when unset)."""
    live: dict[tuple[str, str], int] = {}
    peak = Gathered(0, "", ())
    step = ""

    def sample() -> None:
        nonlocal peak
        total = sum(live.values())
        if total > peak.bytes:
            peak = Gathered(total, step, tuple((u, w, b) for (u, w), b in live.items()))

    def put(unit: Unit, what: str, size: int) -> None:
        if size:
            live[(unit.name, what)] = size
            sample()

    def drop(unit: Unit, what: str) -> None:
        live.pop((unit.name, what), None)

    root = next((u for u in units if u.name == "the root"), None)
    forward = list(units)
    deferred = {u.name for u in forward if u.deferred}
    ag_kept: Unit | None = None
    unsharded: set[str] = set()
    for u in forward:
        step = f"{u.name}'s forward"
        put(u, "all-gather buffer", u.numbers * itemsize)
        if ag_kept is not None:
            drop(ag_kept, "all-gather buffer")
        put(u, "parameters", u.numbers * itemsize)
        unsharded.add(u.name)
        ag_kept = u
        if u.reshard and u is not root:
            if u.post_forward:
                put(u, "post-forward shard", u.numbers * itemsize // u.post_forward)
            drop(u, "parameters")
            unsharded.discard(u.name)
    if ag_kept is not None:  # the root's post-forward frees the last all-gather
        drop(ag_kept, "all-gather buffer")
    backward = sorted(units, key=lambda u: u.last, reverse=True)
    pending: set[str] = set()
    reduce_kept: Unit | None = None

    def post_backward(u: Unit) -> None:
        nonlocal reduce_kept, step
        step = f"{u.name}'s reduce-scatter"
        sample()
        drop(u, "parameters")
        unsharded.discard(u.name)
        if reduce_kept is not None:
            drop(reduce_kept, "reduce-scatter input")
            reduce_kept = None
        if u.grads:
            put(u, "reduce-scatter input", u.reduced * reduce_itemsize)
            drop(u, "gradients")
            reduce_kept = u

    for i, u in enumerate(backward):
        step = f"{u.name}'s backward"
        if u.name not in unsharded:
            if u.name not in pending:
                put(u, "all-gather buffer", u.numbers * itemsize)
            put(u, "parameters", u.numbers * itemsize)
            drop(u, "post-forward shard")
            drop(u, "all-gather buffer")
            pending.discard(u.name)
            unsharded.add(u.name)
        if i + 1 < len(backward):
            nxt = backward[i + 1]
            if nxt.name not in unsharded and nxt.name not in pending:
                pending.add(nxt.name)
                put(nxt, "all-gather buffer", nxt.numbers * itemsize)
        if u is not root:
            put(u, "gradients", u.grads * itemsize)
            if u.name not in deferred:
                post_backward(u)
    if root is not None:
        step = "the end of the backward"
        put(root, "gradients", root.grads * itemsize)
    for u in forward:  # the final callback: module order, the root first
        if u.name in deferred:
            post_backward(u)
    return peak
