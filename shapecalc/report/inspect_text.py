"""``shapecalc inspect``'s tree as plain text: the tensors as a tree of dotted names with
subtotals, cut at ``depth`` levels. Built and walked without recursion, in time linear in
the tensors (a header of 200,000 tensors prints in about a second); every name from a
file is printed as text, its control characters escaped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shapecalc.adapters.checkpoint import BUFFER_NAMES, is_buffer_name, paused_gc
from shapecalc.core.dims import count_noun, shape_str
from shapecalc.core.errors import printable
from shapecalc.core.units import human_bytes, human_count

if TYPE_CHECKING:
    from shapecalc.adapters.targets import Entry, Inspection

__all__ = ["Listing", "buffer_note", "inspection_text", "listing"]


@dataclass(frozen=True)
class Listing:
    """What ``inspect`` lists: the tensors in the order a state dict holds them (a
    module's buffers after its parameters), which of them are buffers, and the two totals
    apart, each shared tensor counted once."""

    entries: tuple[Entry, ...]
    #: one flag per entry: a buffer (running statistics), not a parameter
    buffers: tuple[bool, ...]
    parameter_total: int
    buffer_total: int
    #: how buffers are told from parameters: ``"module"`` (torch registered them so) or
    #: ``"name"`` (a checkpoint does not say: by the names torch.nn gives its buffers)
    buffers_by: str
    #: a module used at several places: its path -> the other paths (a module target)
    reused: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def listing(inspection: Inspection) -> Listing:
    """The tensors of ``inspection`` with parameters and buffers told apart: a module's as
    torch registered them, a checkpoint's by name (:func:`is_buffer_name`)."""
    model = inspection.model
    if model is None:
        entries = inspection.entries
        flags = tuple(is_buffer_name(e.name) for e in entries)
        buffered = sum(e.count for e, b in zip(entries, flags, strict=True) if b)
        counted = sum(
            e.count for e, b in zip(entries, flags, strict=True) if not b and not e.tied_to
        )
        return Listing(entries, flags, counted, buffered, "name")
    from shapecalc.adapters.targets import Entry
    from shapecalc.adapters.torch_bridge import ModuleModel
    from shapecalc.core.model import full_name
    from shapecalc.core.spec import expand

    rows = model.rows()
    by_layer: dict[str, list[Entry]] = {}
    if len(rows) == len(inspection.entries):
        for row, entry in zip(rows, inspection.entries, strict=True):
            by_layer.setdefault(row.layer, []).append(entry)
    else:  # not the model's rows, one for one: listed as they come, buffers after
        by_layer[""] = list(inspection.entries)
    listed: list[Entry] = []
    marks: list[bool] = []
    buffered = 0
    for layer in model.layers:
        mine = by_layer.pop(layer.name, [])
        listed += mine
        marks += [False] * len(mine)
        for b in expand(layer.spec.buffers()):
            count = b.count if isinstance(b.count, int) else 0  # a module's sizes are numbers
            shape = tuple(d for d in b.shape if isinstance(d, int))
            listed.append(Entry(full_name(layer.name, b.name), shape, count, kind=layer.spec.kind))
            marks.append(True)
            buffered += count
    for rest in by_layer.values():
        listed += rest
        marks += [False] * len(rest)
    reused = model.reused if isinstance(model, ModuleModel) else {}
    return Listing(
        tuple(listed), tuple(marks), inspection.total, buffered, "module", reused, model.notes
    )


def buffer_note(shown: Listing) -> str | None:
    """What the reader should know about the split, when a checkpoint holds buffers."""
    if shown.buffers_by != "name" or not any(shown.buffers):
        return None
    return (
        "buffers are told apart by name (" + ", ".join(sorted(BUFFER_NAMES)) + "): a "
        "checkpoint does not record which tensors are parameters"
    )


#: a node: [parameters, children by name, (entry, is a buffer) or None, the kinds of the
#: layers under it, whether tensors deeper than the cut are summed into it, buffers' numbers]
Node = list[Any]


def _tree(shown: Listing, depth: int) -> Node:
    """The dotted names as nested nodes down to ``depth`` levels, deeper tensors summed
    into the node at the cut (the collector paused: it would walk the young nodes again
    and again while hundreds of thousands are made)."""
    with paused_gc():
        return _nodes(shown, depth)


def _nodes(shown: Listing, depth: int) -> Node:
    root: Node = [0, {}, None, set(), False, 0]
    for entry, buffer in zip(shown.entries, shown.buffers, strict=True):
        counted = 0 if entry.tied_to or buffer else entry.count
        buffered = entry.count if buffer else 0
        kind = entry.kind
        node = root
        node[0] += counted
        node[5] += buffered
        node[3].add(kind)
        parts = entry.name.split(".", depth)  # no more than the levels shown
        for part in parts[:depth]:
            children = node[1]
            child = children.get(part)
            if child is None:
                child = children[part] = [0, {}, None, set(), False, 0]
            node = child
            node[0] += counted
            node[5] += buffered
            node[3].add(kind)
        if len(parts) > depth:
            node[4] = True
        else:
            node[2] = (entry, buffer)
    return root


def inspection_text(inspection: Inspection, depth: int) -> str:
    """The tree, one line per node down to ``depth`` levels; the parameters and the
    buffers counted apart; notes (a module used twice, buffers told apart by name) after."""
    shown = listing(inspection)
    total = shown.parameter_total
    title = (
        f"{printable(inspection.target)}  {count_noun(total, 'parameter')} ({human_count(total)})"
    )
    if shown.buffer_total:
        title += f" + {shown.buffer_total:,} in buffers"
    if inspection.checkpoint is not None:
        by_dtype = ", ".join(
            f"{printable(d)} {human_bytes(b)}"
            for d, b in inspection.checkpoint.bytes_by_dtype().items()
        )
        title += f" · {human_bytes(inspection.checkpoint.nbytes)} ({by_dtype})"
    lines = [title]
    reused = shown.reused

    def label(path: str, part: str, node: Node) -> str:
        name = printable(part)
        count, children, leaf, kinds, deeper, buffered = node
        share = f" ({100 * count / total:.1f}%)" if total else ""
        if leaf is not None and not children and not deeper:
            entry, buffer = leaf
            text = f"{name}  {shape_str(entry.shape)}  "
            if entry.tied_to:
                return text + f"tied to {printable(entry.tied_to)}, counted there"
            text += f"{entry.count:,}  buffer" if buffer else f"{entry.count:,}{share}"
            return text + (f"  {printable(entry.dtype)}" if entry.dtype else "")
        kind = next(iter(kinds)) if len(kinds) == 1 else None
        text = f"{name}  {count:,}{share}"
        text += f" + {buffered:,} in buffers" if buffered else ""
        text += f"  {kind}" if kind else ""
        if path in reused:
            text += f"  also used as {', '.join(printable(p) for p in reused[path])}"
        return text

    # depth first, children in order, without recursion: (prefix, path, name, node, level,
    # last)
    stack: list[tuple[str, str, str, Node, int, bool]] = []
    first = list(_tree(shown, depth)[1].items())
    for i in range(len(first) - 1, -1, -1):
        stack.append(("", first[i][0], first[i][0], first[i][1], 1, i == len(first) - 1))
    while stack:
        prefix, path, name, node, level, last = stack.pop()
        lines.append(f"{prefix}{'└── ' if last else '├── '}{label(path, name, node)}")
        if level < depth:
            inner = prefix + ("    " if last else "│   ")
            children = list(node[1].items())
            for i in range(len(children) - 1, -1, -1):
                child, below = children[i]
                stack.append(
                    (inner, f"{path}.{child}", child, below, level + 1, i == len(children) - 1)
                )
    said = buffer_note(shown)
    notes = [*shown.notes, *([said] if said else [])]
    if notes:
        lines.append("")
        lines += [f"Note: {printable(note[:1].upper() + note[1:])}" for note in notes]
    return "\n".join(lines)
