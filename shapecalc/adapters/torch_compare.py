"""Comparing a model with a real module, a state dict or a checkpoint file: :func:`compare`
lists every tensor missing, unexpected or of another shape; :func:`assert_matches` raises
on any.

A state dict (``{name: tensor}``, as ``module.state_dict()`` or ``torch.load`` gives it)
and a file (``.safetensors`` read by its header, ``.pt``/``.pth``/``.bin`` through
:func:`shapecalc.adapters.checkpoint.read_checkpoint`) hold buffers too, and may keep a
tied tensor under both its names or under one: a buffer the model has and a tied name
are checked when present and not missed when absent; the order is not compared (loading
goes by name, and safetensors sorts its names).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shapecalc.adapters.torch_build import _spec_or_model
from shapecalc.adapters.torch_read import _shape, check_module_tree
from shapecalc.core.dims import Dim, shape_str
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError, echo
from shapecalc.core.model import Model
from shapecalc.core.spec import LayerSpec
from shapecalc.core.tree import (
    Leaf,
)


# -- comparing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Diff:
    """What differs between a spec (or model) and a real module."""

    missing: tuple[tuple[str, tuple[Dim, ...]], ...] = ()
    extra: tuple[tuple[str, tuple[int, ...]], ...] = ()
    mismatched: tuple[tuple[str, tuple[Dim, ...], tuple[int, ...]], ...] = ()
    order: bool = True
    expected_total: Dim = 0
    actual_total: int = 0
    compared: int = field(default=0)
    #: what the spec was compared with: "module", "state dict" or "file"
    where: str = "module"
    #: tensors of the module the model does not count yet (its ``uncounted`` prefixes),
    #: left out of the comparison: (how many, what they are)
    left_out: tuple[int, str] = (0, "")

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.mismatched) and self.order

    def __bool__(self) -> bool:  # a Diff is truthy when something differs
        return not self.ok

    def lines(self) -> list[str]:
        where = self.where
        out = [f"missing in the {where}: {n} {shape_str(s)}" for n, s in self.missing]
        out += [f"not in the spec: {n} {shape_str(s)}" for n, s in self.extra]
        out += [
            f"shape differs: {n} spec {shape_str(a)} {where} {shape_str(b)}"
            for n, a, b in self.mismatched
        ]
        if not self.order and not out:
            out.append("the same parameters in another order")
        if self.expected_total != self.actual_total:
            out.append(
                f"count: spec {self.expected_total:,} {where} {self.actual_total:,} "
                f"({self.actual_total - self.expected_total:+,})"
                if isinstance(self.expected_total, int)
                else f"count: spec {self.expected_total} {where} {self.actual_total:,}"
            )
        return out

    def __str__(self) -> str:
        many, what = self.left_out
        aside = f"; {many:,} tensors of {what} left out, not counted yet" if many else ""
        if self.ok:
            return f"{self.compared} parameters, names and shapes identical{aside}"
        return "; ".join(self.lines()) + aside


class MismatchError(ShapecalcError, AssertionError):
    """A module is not what its spec says (raised by :func:`assert_matches`)."""


def compare(
    spec: LayerSpec | Model, module: Any, *, names: Mapping[str, str] | None = None
) -> Diff:
    """Names and shapes of ``spec``'s parameters against ``module``: a torch module's
    ``named_parameters()``, a state dict (``{name: tensor}``) or a checkpoint file's path
    (see the module's docstring for buffers and tied names). ``names`` maps prefixes of
    the spec's names to the module's where the module names its parts otherwise:
    ``{"embedding": "encoder", "lstm": "rnn", "head": "decoder"}`` (the longest prefix
    that matches a whole part wins)."""
    _spec_or_model(spec, "compare", "spec")
    model = spec if isinstance(spec, Model) else Model(str(spec), Leaf(spec))
    expected = _renamed(model.named_parameters(), names)
    if isinstance(module, (str, os.PathLike)):
        from shapecalc.adapters.checkpoint import read_checkpoint

        stored = read_checkpoint(os.fspath(module))
        tensors = [(t.name, t.shape) for t in stored.tensors]
        return _stored_diff(model, expected, tensors, names, "file")
    if isinstance(module, Mapping):
        return _stored_diff(model, expected, _state_shapes(module), names, "state dict")
    if not callable(getattr(module, "named_parameters", None)):
        raise TypeError(
            "compare: module must be a torch.nn.Module, a state dict or a checkpoint's path, "
            f"got {type(module).__name__}"
        )
    check_module_tree(module, "compare")
    prefixes = tuple(model.uncounted)
    actual = [(n, _shape(p)) for n, p in module.named_parameters() if not n.startswith(prefixes)]
    skipped = [p for n, p in module.named_parameters() if prefixes and n.startswith(prefixes)]
    want, have = dict(expected), dict(actual)
    missing = tuple((n, s) for n, s in expected if n not in have)
    extra = tuple((n, s) for n, s in actual if n not in want)
    mismatched = tuple((n, s, have[n]) for n, s in expected if n in have and have[n] != s)
    same_names = [n for n, _ in expected if n in have] == [n for n, _ in actual if n in want]
    return Diff(
        missing=missing,
        extra=extra,
        mismatched=mismatched,
        order=same_names,
        expected_total=model.total,
        actual_total=sum(int(p.numel()) for p in module.parameters())
        - sum(int(p.numel()) for p in skipped),
        compared=len(expected),
        left_out=(len(skipped), " and ".join(model.uncounted.values())) if skipped else (0, ""),
    )


def _state_shapes(state: Mapping[Any, Any]) -> list[tuple[str, tuple[int, ...]]]:
    """A state dict's names and shapes: each value a tensor or array (its ``shape``)."""
    out = []
    for name, value in state.items():
        shape = getattr(value, "shape", None)
        if not isinstance(name, str) or shape is None:
            raise TypeError(
                "compare: a state dict maps str names to tensors or arrays, got "
                f"{type(name).__name__} -> {type(value).__name__}"
            )
        out.append((name, tuple(int(d) for d in shape)))
    return out


def _stored_diff(
    model: Model,
    expected: list[tuple[str, tuple[Any, ...]]],
    tensors: Iterable[tuple[str, tuple[int, ...]]],
    names: Mapping[str, str] | None,
    where: str,
) -> Diff:
    """The parameters against stored tensors: a buffer of the model's or a tied name is
    checked when stored, not missed when not; every other stored tensor is the spec's. A
    tied tensor stored under both names is counted once."""
    rename = _renamer(names)
    buffers = {rename(n): s for n, s in model.named_buffers()}
    params = dict(model.named_parameters())
    tied = {rename(t): rename(src) for t, src in model.ties.items() if src in params}
    tied_shapes = {t: params[src] for t, src in model.ties.items() if src in params}
    optional = {**buffers, **{rename(t): s for t, s in tied_shapes.items()}}
    prefixes = tuple(model.uncounted)
    listed = list(tensors)
    have = {n: s for n, s in listed if not (prefixes and n.startswith(prefixes))}
    skipped = len(listed) - len(have)
    want = dict(expected)
    missing = tuple((n, s) for n, s in expected if n not in have)
    extra = tuple((n, s) for n, s in have.items() if n not in want and n not in optional)
    mismatched = tuple(
        (n, s, have[n]) for n, s in (*expected, *optional.items()) if n in have and have[n] != s
    )
    actual_total = 0
    for name, shape in have.items():
        if name in buffers or (name in tied and tied[name] in have):
            continue
        size = 1
        for d in shape:
            size *= d
        actual_total += size
    return Diff(
        missing=missing,
        extra=extra,
        mismatched=mismatched,
        expected_total=model.total,
        actual_total=actual_total,
        compared=len(expected),
        where=where,
        left_out=(skipped, " and ".join(model.uncounted.values())) if skipped else (0, ""),
    )


def _renamer(names: Mapping[str, str] | None) -> Any:
    """A name with the longest prefix of ``names`` that is whole parts replaced."""
    order = sorted(names or {}, key=len, reverse=True)

    def rename(name: str) -> str:
        for prefix in order:
            if name == prefix or name.startswith(prefix + "."):
                return (names or {})[prefix] + name[len(prefix) :]
        return name

    return rename


def _renamed(
    expected: list[tuple[str, tuple[Any, ...]]], names: Mapping[str, str] | None
) -> list[tuple[str, tuple[Any, ...]]]:
    """The spec's names with each prefix of ``names`` replaced (a prefix is whole parts:
    ``lstm`` renames ``lstm.weight_ih_l0``, not ``lstm2.weight``)."""
    if names is None:
        return expected
    if not isinstance(names, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in names.items()
    ):
        raise TypeError("compare: names must be a mapping of str prefixes to str prefixes")
    order = sorted(names, key=len, reverse=True)

    def rename(name: str) -> tuple[str, str | None]:
        for prefix in order:
            if name == prefix or name.startswith(prefix + "."):
                return names[prefix] + name[len(prefix) :], prefix
        return name, None

    renamed = [(rename(n), s) for n, s in expected]
    used = {prefix for (_, prefix), _ in renamed}
    unused = [p for p in names if p not in used]
    if unused:
        first = sorted({n.split(".", 1)[0] for n, _ in expected})[:6]
        raise InvalidArgumentError(
            f"names: {echo(unused[0])} is no prefix of the spec's parameter names "
            f"(they start with {', '.join(first)})",
            field="names",
            value=unused[0],
            rule="each key a prefix of the spec's names",
        )
    return [(name, s) for (name, _), s in renamed]


def assert_matches(
    spec: LayerSpec | Model, module: Any, *, names: Mapping[str, str] | None = None
) -> None:
    """Raise :class:`MismatchError` (an ``AssertionError`` too) listing every difference
    between ``spec`` and ``module`` (a torch module, a state dict or a checkpoint file's
    path, as in :func:`compare`); ``names`` maps the spec's prefixes to the module's:

        assert_matches(shapecalc.lstm_lm(vocab=33278, hidden=200, layers=2), model,
                       names={"embedding": "encoder", "lstm": "rnn", "head": "decoder"})
        assert_matches(spec, "model.safetensors")
    """
    diff = compare(spec, module, names=names)
    if diff:
        what = spec if isinstance(spec, LayerSpec) else spec.name
        given = (
            echo(os.fspath(module))
            if isinstance(module, (str, os.PathLike))
            else type(module).__name__
        )
        raise MismatchError(
            f"{given} does not match {what}: {diff}",
            field="module",
            value=given,
            rule="the module's parameters must be the spec's",
        )
