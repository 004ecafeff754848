"""``shapecalc inspect``'s tree as plain text: the tensors as a tree of dotted names with
subtotals, cut at ``depth`` levels. Built and walked without recursion, in time linear in
the tensors (a header of 200,000 tensors prints in about a second); every name from a
file is printed as text, its control characters escaped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shapecalc.adapters.checkpoint import paused_gc
from shapecalc.core.dims import shape_str
from shapecalc.core.errors import printable
from shapecalc.core.units import human_bytes, human_count

if TYPE_CHECKING:
    from shapecalc.adapters.targets import Inspection

__all__ = ["inspection_text"]

#: a node: [count, children by name, entry or None, the kinds of the layers under it,
#: whether tensors deeper than the cut are summed into it]
Node = list[Any]


def _tree(inspection: Inspection, depth: int) -> Node:
    """The dotted names as nested nodes down to ``depth`` levels, deeper tensors summed
    into the node at the cut (the collector paused: it would walk the young nodes again
    and again while hundreds of thousands are made)."""
    with paused_gc():
        return _nodes(inspection, depth)


def _nodes(inspection: Inspection, depth: int) -> Node:
    root: Node = [0, {}, None, set(), False]
    for entry in inspection.entries:
        counted = 0 if entry.tied_to else entry.count
        kind = entry.kind
        node = root
        node[0] += counted
        node[3].add(kind)
        parts = entry.name.split(".", depth)  # no more than the levels shown
        for part in parts[:depth]:
            children = node[1]
            child = children.get(part)
            if child is None:
                child = children[part] = [0, {}, None, set(), False]
            node = child
            node[0] += counted
            node[3].add(kind)
        if len(parts) > depth:
            node[4] = True
        else:
            node[2] = entry
    return root


def inspection_text(inspection: Inspection, depth: int) -> str:
    """The tree, one line per node down to ``depth`` levels."""
    total = inspection.total
    title = f"{printable(inspection.target)}  {total:,} parameters ({human_count(total)})"
    if inspection.checkpoint is not None:
        by_dtype = ", ".join(
            f"{printable(d)} {human_bytes(b)}"
            for d, b in inspection.checkpoint.bytes_by_dtype().items()
        )
        title += f" · {human_bytes(inspection.checkpoint.nbytes)} ({by_dtype})"
    lines = [title]

    def label(part: str, node: Node) -> str:
        name = printable(part)
        count, children, entry, kinds, deeper = node
        share = f" ({100 * count / total:.1f}%)" if total else ""
        if entry is not None and not children and not deeper:
            text = f"{name}  {shape_str(entry.shape)}  "
            if entry.tied_to:
                return text + f"tied to {printable(entry.tied_to)}, counted there"
            text += f"{entry.count:,}{share}"
            return text + (f"  {printable(entry.dtype)}" if entry.dtype else "")
        kind = next(iter(kinds)) if len(kinds) == 1 else None
        return f"{name}  {count:,}{share}" + (f"  {kind}" if kind else "")

    # depth first, children in order, without recursion: (prefix, name, node, level, last)
    stack: list[tuple[str, str, Node, int, bool]] = []
    first = list(_tree(inspection, depth)[1].items())
    for i in range(len(first) - 1, -1, -1):
        stack.append(("", first[i][0], first[i][1], 1, i == len(first) - 1))
    while stack:
        prefix, name, node, level, last = stack.pop()
        lines.append(f"{prefix}{'└── ' if last else '├── '}{label(name, node)}")
        if level < depth:
            inner = prefix + ("    " if last else "│   ")
            children = list(node[1].items())
            for i in range(len(children) - 1, -1, -1):
                stack.append(
                    (inner, children[i][0], children[i][1], level + 1, i == len(children) - 1)
                )
    return "\n".join(lines)
