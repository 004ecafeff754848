"""Reading a GGUF file's header (llama.cpp's format) without its tensors' data.

A GGUF file is ``GGUF``, a version (2 or 3), the tensor and key counts, the metadata
keys with their typed values, then one entry per tensor (name, dims, ggml type, offset
into the data), then the data, aligned to ``general.alignment`` (32 by default). Only
the header is read, from a memory map: a 40 GB file is inspected in the time its
tokenizer's strings take to walk. Every count, length, nesting, type and offset is
checked against the file before it is trusted: a malformed, truncated or hostile file
raises :class:`~shapecalc.adapters.checkpoint.CheckpointError` in one line, and nothing
is allocated past the file's own bytes.

ggml writes each tensor's dims as ``ne``, fastest first: the reverse of torch's shape.
:class:`GGUFTensor` keeps ``ne`` and gives ``shape`` in torch's order, as every other
checkpoint here is shown. Block types (``Q4_K``: 256 numbers in 144 bytes) need their
rows (``ne[0]``) to hold whole blocks, as ggml requires.

The format: ggml's ``docs/gguf.md`` and ``ggml/src/gguf.cpp`` (llama.cpp); the bounds
follow ``gguf.cpp``'s (at most 4 dims, names under 64 bytes, sizes within int64, offsets
aligned, no tensor past the file). The ``gguf`` Python package is the tests' truth, never
imported here.
"""

from __future__ import annotations

import itertools
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shapecalc.adapters.checkpoint import Checkpoint, CheckpointError, Tensor
from shapecalc.core.dims import count_noun
from shapecalc.core.errors import ShapecalcError, field_error, printable
from shapecalc.core.storage import GGML_TYPES, STORAGE, GGMLType

__all__ = [
    "MAX_DIMS",
    "MAX_NAME",
    "GGUFArray",
    "GGUFFile",
    "GGUFTensor",
    "read_gguf",
]

MAGIC = b"GGUF"
#: ggml's GGML_MAX_DIMS
MAX_DIMS = 4
#: ggml's GGML_MAX_NAME (64, with its terminating zero): names are shorter
MAX_NAME = 64
#: arrays nested deeper than this are refused (gguf.cpp reads none nested at all)
MAX_NESTING = 8
#: the most strings and arrays a header's arrays may hold in all, walked one by one (a
#: tokenizer's tokens and merges: a few hundred thousand)
MAX_WALKED = 4_000_000
#: arrays of at most this many items keep their values (longer ones: their length)
KEEP_ITEMS = 64
#: arrays of numbers of at most this many keep their values: one per layer, up to
#: llama.cpp's LLAMA_MAX_LAYERS (src/llama-hparams.h: 512), which its per-layer
#: metadata (``<arch>.attention.head_count_kv`` and the like) cannot exceed
KEEP_NUMBERS = 512
#: the largest size ggml holds (int64)
INT64_MAX = 2**63 - 1
DEFAULT_ALIGNMENT = 32

#: GGUF value type id -> (name, struct code, bytes); 8 is a string, 9 an array
VALUE_TYPES: dict[int, tuple[str, str, int]] = {
    0: ("uint8", "B", 1),
    1: ("int8", "b", 1),
    2: ("uint16", "H", 2),
    3: ("int16", "h", 2),
    4: ("uint32", "I", 4),
    5: ("int32", "i", 4),
    6: ("float32", "f", 4),
    7: ("bool", "?", 1),
    10: ("uint64", "Q", 8),
    11: ("int64", "q", 8),
    12: ("float64", "d", 8),
}
STRING, ARRAY = 8, 9


@dataclass(frozen=True)
class GGUFArray:
    """A metadata array: its item type, its length, and its items when it is short
    (:data:`KEEP_ITEMS`; numbers: :data:`KEEP_NUMBERS`); a tokenizer's 150,000 tokens are
    counted, not kept."""

    item_type: str
    length: int
    items: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor's entry: ``ne`` as ggml writes it (fastest dim first), its type and
    where its data lies (from the data section's start)."""

    name: str
    ne: tuple[int, ...]
    type: GGMLType
    offset: int
    nbytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """torch's order: ``ne`` reversed (a (V, H) embedding is stored as ne [H, V])."""
        return tuple(reversed(self.ne))

    @property
    def count(self) -> int:
        n = 1
        for d in self.ne:
            n *= d
        return n


@dataclass(frozen=True)
class GGUFFile:
    path: str
    version: int
    byte_order: str
    alignment: int
    #: where the data section begins in the file
    data_offset: int
    size: int
    metadata: dict[str, Any]
    tensors: tuple[GGUFTensor, ...]
    #: the metadata's own types, key -> value type name (``uint32``, ``array``)
    types: dict[str, str] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None

    @property
    def parameters(self) -> int:
        return sum(t.count for t in self.tensors)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def bits_per_weight(self) -> float:
        """The tensors' bits per number (the data's padding not counted)."""
        count = self.parameters
        return 8 * self.nbytes / count if count else 0.0

    def checkpoint(self) -> Checkpoint:
        """The tensors as a checkpoint's (torch's shapes, ggml's type names)."""
        tensors = tuple(Tensor(t.name, t.type.name, t.shape, t.nbytes) for t in self.tensors)
        return Checkpoint(self.path, "gguf", tensors, {})

    def by_type(self) -> dict[str, tuple[int, int, int]]:
        """ggml type name -> (tensors, numbers, bytes), in the order first met."""
        out: dict[str, tuple[int, int, int]] = {}
        for t in self.tensors:
            n, c, b = out.get(t.type.name, (0, 0, 0))
            out[t.type.name] = (n + 1, c + t.count, b + t.nbytes)
        return out


def _fail(path: str, message: str) -> ShapecalcError:
    name = printable(os.path.basename(path))[:200]
    return field_error(
        "target",
        path,
        "a GGUF file must be well formed",
        f"{name}: {message}",
        kind=CheckpointError,
    )


def _shown(text: str, limit: int = 80) -> str:
    shown = printable(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


class _Header:
    """A cursor over the file's bytes that refuses to read past them."""

    def __init__(self, path: str, view: memoryview, order: str) -> None:
        self.path, self.view, self.order, self.pos = path, view, order, 0
        self.size = len(view)
        self.walked = 0
        self.what = "the header"

    def fail(self, message: str) -> ShapecalcError:
        return _fail(self.path, message)

    def need(self, n: int) -> None:
        if n > self.size - self.pos:
            raise self.fail(
                f"truncated: {self.what} needs {n:,} bytes at offset {self.pos:,}, the file "
                f"ends at {self.size:,}"
            )

    def unpack(self, code: str, n: int) -> Any:
        self.need(n)
        (value,) = struct.unpack_from(self.order + code, self.view, self.pos)
        self.pos += n
        return value

    def u32(self) -> int:
        value: int = self.unpack("I", 4)
        return value

    def u64(self) -> int:
        value: int = self.unpack("Q", 8)
        return value

    def string_bytes(self) -> bytes:
        length = self.u64()
        if length > self.size - self.pos:
            raise self.fail(
                f"{self.what}: a string claims {length:,} bytes at offset {self.pos - 8:,}, "
                f"past the end of the file ({self.size:,} bytes)"
            )
        start = self.pos
        self.pos += length
        return bytes(self.view[start : self.pos])

    def string(self) -> str:
        return self.text(self.string_bytes())

    def text(self, raw: bytes) -> str:
        """``raw`` decoded as UTF-8, or refused: GGUF's strings are UTF-8, and gguf-py's
        reader (``ReaderField.contents``) decodes them so, strictly."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(
                f"{self.what}: a string is not valid UTF-8 ({_shown(repr(raw), 60)}); "
                "GGUF's strings are UTF-8"
            ) from None

    def value(self, kind: int, depth: int = 0) -> Any:
        if kind in VALUE_TYPES:
            _, code, n = VALUE_TYPES[kind]
            return self.unpack(code, n)
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            return self.array(depth + 1)
        raise self.fail(f"{self.what}: unknown value type {kind} (GGUF's are 0 to 12)")

    def array(self, depth: int) -> GGUFArray:
        if depth > MAX_NESTING:
            raise self.fail(f"{self.what}: arrays nested more than {MAX_NESTING} deep")
        kind = self.u32()
        length = self.u64()
        left = self.size - self.pos
        if kind in VALUE_TYPES:
            name, code, n = VALUE_TYPES[kind]
            if length * n > left:
                raise self.fail(
                    f"{self.what}: an array of {length:,} {name} needs {length * n:,} bytes, "
                    f"the file has {left:,} left"
                )
            items = None
            if length <= KEEP_NUMBERS:
                items = struct.unpack_from(f"{self.order}{length}{code}", self.view, self.pos)
            self.pos += length * n
            return GGUFArray(name, length, items)
        # strings (8 bytes of length at least) and arrays (12 bytes of header at least)
        least = 8 if kind == STRING else 12
        if kind not in (STRING, ARRAY):
            raise self.fail(f"{self.what}: an array of unknown value type {kind}")
        self.walked += length
        if self.walked > MAX_WALKED:
            raise self.fail(
                f"{self.what}: the header's arrays hold over {MAX_WALKED:,} strings and "
                "arrays, more than any model's tokenizer"
            )
        if length * least > left:
            raise self.fail(
                f"{self.what}: an array of {length:,} "
                f"{'strings' if kind == STRING else 'arrays'} needs at least "
                f"{length * least:,} bytes, the file has {left:,} left"
            )
        if kind == STRING:
            return self._strings(length)
        kept = [self.array(depth + 1) for _ in range(length)]
        return GGUFArray("array", length, tuple(kept) if length <= KEEP_ITEMS else None)

    def _strings(self, length: int) -> GGUFArray:
        """An array of strings walked by their lengths (a tokenizer's 150,000 in a few
        tens of milliseconds): each length checked against the file, each string's UTF-8
        (as gguf-py decodes each) at once when every one is shorter than 128 bytes."""
        view, size, pos = self.view, self.size, self.pos
        start = pos
        unpack = struct.Struct(self.order + "Q").unpack_from
        keep = length <= KEEP_ITEMS
        items: list[str] = []
        longest = 0
        for _ in range(length):
            if pos + 8 > size:
                self.pos = pos
                self.need(8)
            (n,) = unpack(view, pos)
            pos += 8
            if n > size - pos:
                self.pos = pos
                raise self.fail(
                    f"{self.what}: a string claims {n:,} bytes at offset {pos - 8:,}, past the "
                    f"end of the file ({size:,} bytes)"
                )
            if n > longest:
                longest = n
            if keep:
                self.pos = pos
                items.append(self.text(bytes(view[pos : pos + n])))
            pos += n
        self.pos = pos
        if not keep and not (longest < 128 and _utf8(bytes(view[start:pos]))):
            self._each_utf8(start, length)
        return GGUFArray("string", length, tuple(items) if keep else None)

    def _each_utf8(self, pos: int, length: int) -> None:
        """Each of ``length`` strings from ``pos`` (lengths checked already) decoded as
        UTF-8, the first that is not refused."""
        view, unpack, end = self.view, struct.Struct(self.order + "Q").unpack_from, self.pos
        for _ in range(length):
            (n,) = unpack(view, pos)
            pos += 8
            raw = bytes(view[pos : pos + n])
            if not _utf8(raw):
                self.pos = pos
                self.text(raw)
            pos += n
        self.pos = end


def _utf8(raw: bytes) -> bool:
    """Whether ``raw`` is UTF-8. The strings of an array with their lengths between them
    are checked in one: a length under 128 is eight ASCII bytes, each a whole character,
    so the strings between them are each UTF-8 when the whole is."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_gguf(path: str) -> GGUFFile:
    """The header of the GGUF file at ``path``: metadata and tensor entries, checked."""
    if not os.path.isfile(path):  # a FIFO or a device is never opened: it may block
        there = os.path.exists(path)
        raise _fail(path, "not a regular file" if there else "no such file")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            if size < 4:
                what = "empty (0 bytes)" if size == 0 else f"{size} bytes"
                raise _fail(path, f"the file is {what}: not a GGUF file")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    return _read(path, view)
                finally:
                    view.release()
    except OSError as err:
        raise _fail(path, f"cannot read it ({err.strerror or err})") from None


def _read(path: str, view: memoryview) -> GGUFFile:
    size = len(view)
    if bytes(view[:4]) != MAGIC:
        raise _fail(path, "not a GGUF file: it does not begin with the magic 'GGUF'")
    if size < 8:
        raise _fail(path, f"truncated: {size} bytes, and a GGUF header needs 24 at least")
    (raw,) = struct.unpack_from("<I", view, 4)
    order = "<"
    if raw & 0xFFFF == 0:  # written big-endian (gguf-py's reader tells them so)
        order = ">"
        (raw,) = struct.unpack_from(">I", view, 4)
    if raw not in (2, 3):
        said = "version 1 (of 2023, before 64-bit counts)" if raw == 1 else f"version {raw:,}"
        raise _fail(path, f"GGUF {said}: shapecalc reads versions 2 and 3")
    head = _Header(path, view, order)
    head.pos = 8
    n_tensors = head.u64()
    n_kv = head.u64()
    # each key takes 13 bytes at least (8 of length, 4 of type, 1 of value) and each
    # tensor entry 24 (8 + 4 + 4 + 8, a name and dims of 0): more than the file holds is
    # refused before anything is made for them
    left = size - head.pos
    if n_kv > left // 13:
        raise _fail(
            path,
            f"the header claims {count_noun(n_kv, 'metadata key')}; the file's {size:,} bytes hold "
            f"{left // 13:,} at most",
        )
    if n_tensors > left // 24:
        raise _fail(
            path,
            f"the header claims {count_noun(n_tensors, 'tensor')}; the file's {size:,} bytes hold "
            f"{left // 24:,} at most",
        )
    metadata: dict[str, Any] = {}
    types: dict[str, str] = {}
    for i in range(n_kv):
        head.what = f"metadata key {i:,}"
        key = head.string()
        head.what = f"metadata {_shown(key, 60)}"
        if key in metadata:
            raise _fail(path, f"metadata key {_shown(key, 60)} appears twice")
        kind = head.u32()
        metadata[key] = head.value(kind)
        types[key] = (
            "string" if kind == STRING else "array" if kind == ARRAY else (VALUE_TYPES[kind][0])
        )
    if "general.architecture" in metadata and types["general.architecture"] != "string":
        raise _fail(
            path,
            f"general.architecture = {_shown(repr(_plain(metadata['general.architecture'])), 40)}"
            f" ({types['general.architecture']}): the architecture is named by a string",
        )
    alignment = DEFAULT_ALIGNMENT
    if "general.alignment" in metadata:
        value = metadata["general.alignment"]
        if types["general.alignment"] != "uint32" or value == 0 or value & (value - 1):
            raise _fail(
                path,
                f"general.alignment = {_shown(repr(value), 40)} "
                f"({types['general.alignment']}): must be a uint32 power of two",
            )
        alignment = value
    entries = list(_tensor_entries(head, n_tensors))
    pos = head.pos
    data_offset = pos + (-pos) % alignment
    data_size = size - data_offset
    if data_offset > size and entries:
        raise _fail(path, f"truncated: the data would begin at {data_offset:,}, past the end")
    tensors = []
    for index, (name, ne, gtype, offset) in enumerate(entries):
        count = 1
        for d in ne:
            count *= d
        nbytes = count // gtype.block * gtype.block_bytes
        shown = _shown(name) if name else _tensor_label(index, name)
        if offset % alignment:
            raise _fail(
                path, f"{shown}: offset {offset:,} is not a multiple of the alignment {alignment}"
            )
        if offset + nbytes > data_size:
            raise _fail(
                path,
                f"{shown}: {gtype.name} {list(ne)} needs {nbytes:,} bytes at offset {offset:,} of "
                f"the data, past the end of the file (the data holds {max(data_size, 0):,})",
            )
        tensors.append(GGUFTensor(name, ne, gtype, offset, nbytes))
    ordered = sorted(tensors, key=lambda t: (t.offset, t.offset + t.nbytes))
    for before, after in itertools.pairwise(ordered):
        if after.offset < before.offset + before.nbytes and after.nbytes and before.nbytes:
            raise _fail(
                path,
                f"{_shown(after.name)}: its data (offset {after.offset:,}) overlaps "
                f"{_shown(before.name)}'s ({before.offset:,} to {before.offset + before.nbytes:,})",
            )
    return GGUFFile(
        path,
        raw,
        "little" if order == "<" else "big",
        alignment,
        data_offset,
        size,
        metadata,
        tuple(tensors),
        types,
    )


def _plain(value: Any) -> Any:
    """A metadata value as it is shown in an error: an array by its type and length."""
    if isinstance(value, GGUFArray):
        return f"array of {value.length:,} {value.item_type}"
    return value


def _tensor_label(index: int, name: str) -> str:
    """``tensor blk.0.attn_q.weight``, or by its entry's index when its name is empty."""
    return f"tensor {_shown(name)}" if name else f"tensor entry {index:,} (its name empty)"


def _tensor_entries(head: _Header, n: int) -> Iterator[tuple[str, tuple[int, ...], GGMLType, int]]:
    seen: dict[str, int] = {}
    for i in range(n):
        head.what = f"tensor entry {i:,}"
        raw = head.string_bytes()
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise head.fail(f"tensor entry {i:,}: its name is not UTF-8") from None
        label = _tensor_label(i, name)
        if len(raw) >= MAX_NAME:
            raise head.fail(f"{label}: a name of {len(raw):,} bytes (ggml's are under {MAX_NAME})")
        if name in seen:
            first = seen[name]
            said = f"tensor {_shown(name)}" if name else "an empty name"
            raise head.fail(
                f"tensor entries {first:,} and {i:,} both have {said}: names must differ"
                if not name
                else f"{said} is listed twice (tensor entries {first:,} and {i:,}): names "
                "must differ"
            )
        seen[name] = i
        head.what = label
        n_dims = head.u32()
        if n_dims > MAX_DIMS:
            raise head.fail(f"{label}: {n_dims:,} dims (ggml holds {MAX_DIMS} at most)")
        head.need(8 * n_dims)
        ne = struct.unpack_from(f"{head.order}{n_dims}Q", head.view, head.pos)
        head.pos += 8 * n_dims
        count = 1
        for d in ne:
            if d > INT64_MAX:
                raise head.fail(f"{label}: dim {d:,} is over int64")
            count *= d
        if count > INT64_MAX:
            raise head.fail(f"{label}: {list(ne)} holds more than 2^63 numbers")
        kind = head.u32()
        gtype = GGML_TYPES.get(kind)
        if gtype is None:
            raise head.fail(f"{label}: unknown ggml type {kind:,}")
        if (ne[0] if ne else 1) % gtype.block:
            raise head.fail(
                f"{label}: {gtype.name} stores blocks of {gtype.block}, and its rows "
                f"(ne[0] = {ne[0] if ne else 1:,}) are not whole blocks"
            )
        if count * gtype.block_bytes // gtype.block > INT64_MAX:
            raise head.fail(f"{label}: its bytes pass int64")
        offset = head.u64()
        yield name, tuple(ne), gtype, offset


assert all(t.storage in STORAGE for t in GGML_TYPES.values())
