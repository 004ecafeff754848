"""``shapecalc inspect``'s tree as plain text: the tensors as a tree of dotted names with
subtotals, cut at ``depth`` levels. Built and walked without recursion, in time linear in
the tensors (a header of 200,000 tensors prints in about a second); every name from a
file is printed as text, its control characters escaped. Every line fits the terminal's
width: what does not fit moves whole to the next line, and only what is longer than a line
(a name of a hundred characters) is broken, never cut."""

from __future__ import annotations

import itertools
import operator
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shapecalc.adapters.checkpoint import BUFFER_NAMES, buffer_flags, paused_gc
from shapecalc.core.dims import count_noun, shape_str
from shapecalc.core.errors import printable
from shapecalc.core.units import human_bytes, human_count

if TYPE_CHECKING:
    from shapecalc.adapters.targets import Entry, Inspection

__all__ = ["Listing", "buffer_note", "fitted", "fitted_lines", "inspection_text", "listing"]


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
        entries = inspection.entries  # a checkpoint's hundreds of thousands: a column a pass
        flags = buffer_flags(list(map(_name, entries)))
        counts = list(map(_count, entries))
        buffered = sum(itertools.compress(counts, flags))
        tied = list(map(_tied_to, entries))
        if any(tied):
            counted = sum(c for c, b, t in zip(counts, flags, tied, strict=True) if not b and not t)
        else:
            counted = sum(counts) - buffered
        return Listing(entries, tuple(flags), counted, buffered, "name")
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


_name, _count = operator.attrgetter("name"), operator.attrgetter("count")
_tied_to = operator.attrgetter("tied_to")


def buffer_note(shown: Listing) -> str | None:
    """What the reader should know about the split, when a checkpoint holds buffers."""
    if shown.buffers_by != "name" or not any(shown.buffers):
        return None
    return (
        "buffers are told apart by name (" + ", ".join(sorted(BUFFER_NAMES)) + "): a "
        "checkpoint does not record which tensors are parameters"
    )


# -- lines that fit the terminal ---------------------------------------------------------------
#: a piece of a line: the separator before it and its text, kept whole where it fits a line
Piece = tuple[str, str]
#: a short parenthesis (a shape, a unit) is one word, never broken at its spaces
_SHORT_PARENS = re.compile(r"\([^()]{0,40}\)")


def _cells(text: str) -> int:
    """The columns ``text`` takes in a terminal (a wide East Asian character two, a
    combining mark none)."""
    if text.isascii():
        return len(text)
    return sum(_char_cells(ch) for ch in text)


def _char_cells(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _fold(word: str, room: int) -> tuple[str, str]:
    """The longest start of ``word`` that takes at most ``room`` columns (at least one
    character), and the rest."""
    if word.isascii():
        room = max(room, 1)
        return word[:room], word[room:]
    used = 0
    for i, ch in enumerate(word):
        used += _char_cells(ch)
        if used > room and i:
            return word[:i], word[i:]
    return word, ""


def _words(text: str) -> list[str]:
    """``text`` split at its spaces, a short parenthesis (a shape) kept as one word."""
    glued = _SHORT_PARENS.sub(lambda m: m.group(0).replace(" ", "\x00"), text)
    return [w.replace("\x00", " ") for w in glued.split(" ")]


def fitted(first: str, rest: str, pieces: Iterable[Piece], width: int) -> list[str]:
    """``pieces`` after ``first`` in lines of at most ``width`` columns, the lines after the
    first begun with ``rest``: a piece moves whole to the next line when it does not fit
    beside the others; one longer than a line is broken at its spaces (a shape kept whole),
    and a word longer than a line (a long name) is folded, never cut."""
    lines: list[str] = []
    room = max(width - _cells(rest), 10)  # a line begun with ``rest``
    line, used, empty = first, _cells(first), True

    def place(sep: str, text: str, size: int) -> bool:
        """``text`` on this line, or alone on the next, if it fits one of them."""
        nonlocal line, used, empty
        if empty and used + size <= width:
            line, used, empty = line + text, used + size, False
        elif not empty and used + _cells(sep) + size <= width:
            line, used = line + sep + text, used + _cells(sep) + size
        elif not empty and size <= room:
            lines.append(line)
            line, used = rest + text, _cells(rest) + size
        else:
            return False
        return True

    for sep, text in pieces:
        if place(sep, text, _cells(text)):
            continue
        # longer than a line: word by word, a word longer than a line folded
        for i, word in enumerate(_words(text)):
            if place(sep if i == 0 else " ", word, _cells(word)):
                continue
            if not empty:
                lines.append(line)
                line, used = rest, _cells(rest)
            while True:
                chunk, word = _fold(word, max(width - used, 10))
                line, used, empty = line + chunk, used + _cells(chunk), False
                if not word:
                    break
                lines.append(line)
                line, used = rest, _cells(rest)
    lines.append(line)
    return [text.rstrip() for text in lines]


def fitted_lines(lines: Iterable[str], width: int) -> list[str]:
    """Lines of prose at most ``width`` columns wide: a line that does not fit is broken at
    its spaces, continued under its text (past a label such as ``  missing     ``)."""
    out: list[str] = []
    for text in lines:
        if _cells(text) <= width:
            out.append(text)
            continue
        label = re.match(r"(?:  [a-z]+(?: shape)? +|Note: )(?=\S)", text)
        first = label.group(0) if label else ""
        rest = " " * len(first) if label else "  "
        body = text[len(first) :]
        out += fitted(first, rest, [(" ", w) for w in _words(body)], width)
    return out


#: a node: [parameters, children by name, (entry, is a buffer) or None, the kinds of the
#: layers under it, whether tensors deeper than the cut are summed into it, buffers' numbers,
#: the bytes stored of every tensor under it]
Node = list[Any]


def _tree(shown: Listing, depth: int) -> Node:
    """The dotted names as nested nodes down to ``depth`` levels, deeper tensors summed
    into the node at the cut (the collector paused: it would walk the young nodes again
    and again while hundreds of thousands are made)."""
    with paused_gc():
        return _nodes(shown, depth)


def _nodes(shown: Listing, depth: int) -> Node:
    root: Node = [0, {}, None, set(), False, 0, 0]
    for entry, buffer in zip(shown.entries, shown.buffers, strict=True):
        counted = 0 if entry.tied_to or buffer else entry.count
        buffered = entry.count if buffer else 0
        stored = entry.nbytes or 0
        kind = entry.kind
        node = root
        node[0] += counted
        node[5] += buffered
        node[6] += stored
        node[3].add(kind)
        parts = entry.name.split(".", depth)  # no more than the levels shown
        for part in parts[:depth]:
            children = node[1]
            child = children.get(part)
            if child is None:
                child = children[part] = [0, {}, None, set(), False, 0, 0]
            node = child
            node[0] += counted
            node[5] += buffered
            node[6] += stored
            node[3].add(kind)
        if len(parts) > depth:
            node[4] = True
        else:
            node[2] = (entry, buffer)
    return root


def inspection_text(inspection: Inspection, depth: int, width: int | None = None) -> str:
    """The tree, one line per node down to ``depth`` levels; the parameters and the
    buffers counted apart; notes (a module used twice, buffers told apart by name) after.
    Each line at most ``width`` columns (None: as long as it comes): a name, shape or
    count that does not fit moves whole to the next line, a name longer than a line is
    folded onto the next. A GGUF file's tensors and groups give their bytes as stored, in
    their ggml type's blocks."""
    shown = listing(inspection)
    stored = inspection.source == "gguf"  # bytes a tensor's type does not tell from its count
    total = shown.parameter_total
    title: list[Piece] = [
        ("", printable(inspection.target)),
        ("  ", f"{count_noun(total, 'parameter')} ({human_count(total)})"),
    ]
    if shown.buffer_total:
        title.append((" ", f"+ {shown.buffer_total:,} in buffers"))
    if inspection.checkpoint is not None:
        by_dtype = ", ".join(
            f"{printable(d)} {human_bytes(b)}"
            for d, b in inspection.checkpoint.bytes_by_dtype().items()
        )
        title.append((" ", f"· {human_bytes(inspection.checkpoint.nbytes)} ({by_dtype})"))
    wide = width is None
    room = width or 0
    lines: list[str] = []

    def add(first: str, rest: str, pieces: list[Piece]) -> None:
        body = "".join(sep + piece for sep, piece in pieces)
        # the tree's lines and corners take a column each
        if wide or len(first) + (len(body) if body.isascii() else _cells(body)) <= room:
            lines.append(first + body)
        else:
            lines.extend(fitted(first, rest, pieces, room))

    add("", "  ", title)
    reused = shown.reused

    def label(path: str, part: str, node: Node) -> list[Piece]:
        name = printable(part)
        count, children, leaf, kinds, deeper, buffered, nbytes = node
        held = [("  ", f"{nbytes:,} bytes")] if stored else []
        share = f" ({100 * count / total:.1f}%)" if total else ""
        if leaf is not None and not children and not deeper:
            entry, buffer = leaf
            pieces = [("", name), ("  ", shape_str(entry.shape))]
            if entry.tied_to:
                return [*pieces, ("  ", f"tied to {printable(entry.tied_to)}, counted there")]
            if buffer:
                pieces += [("  ", f"{entry.count:,}"), ("  ", "buffer")]
            else:
                pieces.append(("  ", f"{entry.count:,}{share}"))
            return pieces + ([("  ", printable(entry.dtype))] if entry.dtype else []) + held
        kind = next(iter(kinds)) if len(kinds) == 1 else None
        counted = f"{count:,}{share}" + (f" + {buffered:,} in buffers" if buffered else "")
        pieces = [("", name), ("  ", counted), *held]
        pieces += [("  ", kind)] if kind else []
        if path in reused:
            pieces.append(("  ", f"also used as {', '.join(printable(p) for p in reused[path])}"))
        return pieces

    # depth first, children in order, without recursion: (prefix, path, name, node, level,
    # last)
    stack: list[tuple[str, str, str, Node, int, bool]] = []
    first = list(_tree(shown, depth)[1].items())
    for i in range(len(first) - 1, -1, -1):
        stack.append(("", first[i][0], first[i][0], first[i][1], 1, i == len(first) - 1))
    while stack:
        prefix, path, name, node, level, last = stack.pop()
        inner = prefix + ("    " if last else "│   ")
        add(prefix + ("└── " if last else "├── "), inner, label(path, name, node))
        if level < depth:
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
        said_lines = [f"Note: {printable(note[:1].upper() + note[1:])}" for note in notes]
        lines += said_lines if wide else fitted_lines(said_lines, room)
    return "\n".join(lines)
