"""Sweeps: how the count, memory and compute move as sizes turn.

:func:`sweep` takes an architecture, the sizes held fixed and, for one or more sizes, the
values to try (a grid when several vary; the batch ``B`` and the sequence length ``T``
may vary too). The model's counts and costs are worked out once with the varying sizes
as letters; each point is then those formulas evaluated, which is why a sweep of ten
thousand points costs little more than one of a hundred. Each point's sizes are still
checked by the architecture's own rules (the config alone, no tree), and a few points
are built whole and compared, so a formula never stands in for a number it would miss.

    >>> from shapecalc.architectures import get
    >>> table = sweep(get("lstm"), {"vocab": 65}, {"hidden": [256, 512], "layers": [1, 2]})
    >>> [point.values[0] for point in table.points]
    [559681, 1086017, 2167873, 4269121]
    >>> print(table.columns[0].formula)
    8·L·H² + 8·L·H + 130·H + 65
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from shapecalc.core.declare import Architecture, arguments_of
from shapecalc.core.dims import Dim, Expr, compiled, parse_int, symbol
from shapecalc.core.errors import InvalidArgumentError, echo, expect, field_error
from shapecalc.core.model import Model

if TYPE_CHECKING:
    from shapecalc.analysis.sweep_fit import FitSetting, SweepFit

__all__ = ["COLUMNS", "MAX_POINTS", "Axis", "Column", "Point", "Sweep", "parse_values", "sweep"]

#: a sweep's points at most (a grid grows as the product of its lists)
MAX_POINTS = 100_000
#: a sweep's points at most against hardware (each point runs fit's searches)
MAX_FIT_POINTS = 2_000
#: key -> (title, unit, short title): what a sweep can show, in the order tables show them
COLUMNS: dict[str, tuple[str, str, str]] = {
    "params": ("parameters", "count", "params"),
    "active": ("active parameters per token", "count", "active"),
    "weights": ("weight bytes", "bytes", "weights"),
    "training": ("training memory", "bytes", "training"),
    "flops": ("FLOPs per token", "flops", "FLOPs/token"),
    "activations": ("activation bytes", "bytes", "activations"),
    "state": ("inference state", "bytes", "state"),
    "inference": ("inference memory", "bytes", "inference"),
}
DEFAULT_SHOW = ("params", "weights", "training", "flops")
#: letters a formula may keep that no argument sets, with what they are
DERIVED = {"D": "head_dim, H / A", "I": "intermediate, the MLP's width"}
#: the sizes of the input, beside the architecture's own
INPUT_SIZES = {"batch": "B", "seq_len": "T"}
_RANGE = re.compile(r"\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?")
_NUMBER = re.compile(r"\s*(-?\d+)\s*")


@dataclass(frozen=True)
class Axis:
    """One size that varies: its argument name, its letter and its values in order."""

    name: str
    letter: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class Column:
    """One quantity of the sweep: its key, its title, its unit (count, bytes or flops)
    and its formula in the sizes that vary."""

    key: str
    title: str
    unit: str
    #: the table's header
    short: str
    #: None when the layers need a varying size as a number (each point built whole)
    formula: Dim | None


@dataclass(frozen=True)
class Point:
    """One point of the grid: each axis's value, and each column's value there."""

    sizes: tuple[int, ...]
    values: tuple[int, ...]
    #: against hardware: the answers of :attr:`Sweep.fit`'s keys there (None: no hardware)
    fit: tuple[int | float | bool | None, ...] | None = None


@dataclass(frozen=True)
class Sweep:
    """The grid's points with their values, and the formula of each column."""

    model: str
    axes: tuple[Axis, ...]
    columns: tuple[Column, ...]
    points: tuple[Point, ...]
    #: the sizes held fixed, by letter, and the cost settings (``B=1, T=1024``)
    fixed: dict[str, int]
    settings: dict[str, Any]
    #: a parameter budget to draw as a line, if one was given
    budget: int | None = None
    #: the letters of the formulas that are no axis, with their names (D: head_dim)
    derived: dict[str, str] = field(default_factory=dict)
    #: against hardware: the setting, the answers' keys and the frontiers
    fit: SweepFit | None = None

    def column(self, key: str) -> list[int]:
        """One column's values, point by point."""
        index = [c.key for c in self.columns].index(key)
        return [p.values[index] for p in self.points]


def parse_values(text: Any, *, field: str) -> tuple[int, ...]:
    """``128,256,512``, ``1..4``, ``64..512:64`` (a step) or a mix, as ints in the order
    given. A range runs upward and includes both ends. No ``8k``: a context of 8k is
    8,192 to some and 8,000 to others, so the number is written out.

        >>> parse_values("1..4,8", field="layers")
        (1, 2, 3, 4, 8)
        >>> parse_values("256..1024:256", field="hidden")
        (256, 512, 768, 1024)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return (text,)
    if isinstance(text, (list, tuple)):
        return tuple(v for item in text for v in parse_values(item, field=field))
    if not isinstance(text, str) or not text.strip():
        _bad(field, text, "a list of integers or a range such as 1..4")
    out: list[int] = []
    for item in text.split(","):
        match = _RANGE.fullmatch(item)
        if match:
            low, high = _int(field, item, match.group(1)), _int(field, item, match.group(2))
            step = _int(field, item, match.group(3)) if match.group(3) else 1
            if high < low:
                _bad(field, item.strip(), "a range that runs upward, low..high")
            if step < 1:
                _bad(field, item.strip(), "a range whose step is an integer >= 1")
            count = (high - low) // step + 1
            if count > MAX_POINTS:
                _bad(field, item.strip(), f"a range of at most {MAX_POINTS:,} values")
            out += range(low, high + 1, step)
            continue
        number = _NUMBER.fullmatch(item)
        if not number:
            return _bad(field, item.strip(), "integers (8192) or ranges (1..4), comma-separated")
        out.append(_int(field, item, number.group(1)))
    if len(out) > MAX_POINTS:
        _bad(field, text, f"a list of at most {MAX_POINTS:,} values")
    return tuple(out)


def _int(field: str, item: str, digits: str) -> int:
    """One number of a list or range; refused past any size (and past ``int()``'s limit)."""
    number = parse_int(digits)
    if number is None:
        _bad(field, item.strip(), "integers from 1 to 2^63 - 1 (a torch dimension)")
    return number


def _bad(field: str, value: Any, rule: str) -> NoReturn:
    """``varying: seq_len must be ..., got 7``: ``field`` must be ``rule``."""
    raise field_error(field, value, rule, f"{field} must be {rule}, got {echo(value)}")


def sweep(
    cls: type[Architecture] | str,
    fixed: Mapping[str, Any],
    varying: Mapping[str, Sequence[int] | str],
    *,
    show: Sequence[str] = DEFAULT_SHOW,
    batch: Any = 1,
    seq_len: Any = 1024,
    dtype: str = "fp32",
    training: str = "adam",
    mixed_precision: bool = False,
    cache: str = "latent",
    budget: int | None = None,
    title: str | None = None,
    weights: Any = None,
    fit: FitSetting | None = None,
    frontier: bool = False,
) -> Sweep:
    """The table of ``show`` (keys of :data:`COLUMNS`) for the architecture ``cls`` (its
    class or its command's name, ``"lstm"``) over the grid of ``varying``
    (argument name -> values; ``batch`` and ``seq_len`` may vary too), the other
    arguments ``fixed``; ``title`` names the model (its own name by default); ``weights``:
    the weights stored quantized (``--weights`` text or a Quantization), every point.
    ``fit``: an accelerator and how the model runs there
    (:class:`~shapecalc.analysis.sweep_fit.FitSetting`): ``show`` may then name the
    answers of :data:`~shapecalc.analysis.sweep_fit.FIT_COLUMNS` too, each point's
    :attr:`Point.fit`, and ``frontier`` adds each swept model's fit frontier."""
    if isinstance(cls, str):  # a command's name: "lstm", "gpt2"
        from shapecalc.architectures import commands, get

        if cls not in commands():
            _bad("architecture", cls, f"one of {', '.join(commands())}")
        cls = get(cls)
    if not (isinstance(cls, type) and issubclass(cls, Architecture)):
        raise TypeError(
            f"sweep: cls must be an architecture class (shapecalc.architectures.get('lstm')), "
            f"got {type(cls).__name__}"
        )
    expect(fixed, Mapping, function="sweep", argument="fixed", what="a mapping of arguments")
    expect(varying, Mapping, function="sweep", argument="varying", what="a mapping of sizes")
    if isinstance(show, str):
        show = tuple(k.strip() for k in show.split(",") if k.strip())

    from shapecalc.analysis.sweep_fit import FIT_COLUMNS

    keys = list(dict.fromkeys(show))
    for key in keys:
        if key in FIT_COLUMNS and fit is None:
            _bad(
                "show",
                key,
                "a column of the model alone: the answers against hardware "
                f"({', '.join(FIT_COLUMNS)}) need --gpu NAME or --memory-gb X",
            )
        if key not in COLUMNS and key not in FIT_COLUMNS:
            _bad("show", key, f"one of {', '.join([*COLUMNS, *FIT_COLUMNS])}")
    if not keys:
        _bad("show", ",".join(show), f"at least one column of {', '.join(COLUMNS)}")
    if frontier and fit is None:
        _bad("frontier", True, "asked with the hardware: give --gpu NAME or --memory-gb X")
    fit_keys = tuple(k for k in keys if k in FIT_COLUMNS)
    keys = [k for k in keys if k not in FIT_COLUMNS]
    if not varying:
        _bad("sizes", "", "at least one size with a list or a range of values")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int) or budget < 1
    ):
        _bad("budget", budget, "a whole number of parameters >= 1")
    letters = _letters(cls)
    inputs = {"batch": batch, "seq_len": seq_len}
    if not cls.sequence:
        inputs.pop("seq_len")
        if "seq_len" in varying:
            _bad("seq_len", varying["seq_len"], f"a sequence model's size ({cls.command} has none)")
    axes: list[Axis] = []
    for name, values in varying.items():
        if name not in letters and name not in inputs:
            _bad(name, values, f"a size of {cls.command}: {', '.join([*letters, *inputs])}")
        parsed = parse_values(values, field=name)
        if not parsed:
            _bad(name, values, "at least one value")
        if name in fixed:
            _bad(name, values, "either fixed or varying, not both")
        axes.append(
            Axis(name, letters.get(name) or INPUT_SIZES[name], tuple(dict.fromkeys(parsed)))
        )
    count = 1
    for axis in axes:
        count *= len(axis.values)
    if count > MAX_POINTS:
        wide = max(axes, key=lambda a: len(a.values))
        flags = " × ".join(f"--{a.name.replace('_', '-')} {len(a.values):,}" for a in axes)
        raise field_error(
            wide.name,
            count,
            f"a grid of at most {MAX_POINTS:,} points",
            f"a sweep is a grid of at most {MAX_POINTS:,} points, and {flags} values make "
            f"{count:,}; give --{wide.name.replace('_', '-')} a step (FROM..TO:STEP) or "
            "fewer values",
        )
    if fit is not None and count > MAX_FIT_POINTS:
        wide = max(axes, key=lambda a: len(a.values))
        raise field_error(
            wide.name,
            count,
            f"a grid of at most {MAX_FIT_POINTS:,} points against hardware",
            f"a sweep against hardware answers fit's questions (searches) at every point: at "
            f"most {MAX_FIT_POINTS:,} points, and {count:,} were asked; give "
            f"--{wide.name.replace('_', '-')} a step (4096..32768:4096) or fewer values",
        )
    settings = {k: v for k, v in inputs.items() if k not in varying}
    for name, value in settings.items():
        if len(parse_values(value, field=name)) != 1:  # several values: pass it in varying
            _bad(name, value, f"one number here; to sweep {name}, give its values in varying")
    settings = {k: parse_values(v, field=k)[0] for k, v in settings.items()}

    # the points: each checked by the architecture's rules, its sizes read off the config
    model_axes = [a for a in axes if a.name in letters]
    input_axes = [a for a in axes if a.name in inputs]
    configs = _configs(cls, fixed, model_axes)
    first = next(iter(configs))
    named = [k for k, v in configs[first].items() if isinstance(v, Expr)]
    if named:
        _bad(named[0], str(configs[first][named[0]]), "a number: every point of a sweep is a model")
    cost_settings: dict[str, Any] = {
        "dtype": dtype,
        "training": training,
        "mixed_precision": mixed_precision,
        "cache": cache,
    }
    if weights is not None:
        from shapecalc.quant import weights_option

        chosen = weights_option(weights)
        if chosen is not None:
            cost_settings["weights"] = chosen
    exact = _Exact(cls, fixed, model_axes, input_axes, settings, keys, cost_settings)
    formulas = _formulas(cls, fixed, axes, settings, keys, cost_settings)
    per_token_formula = None if formulas is None else formulas.pop("_per_token", None)
    grid = [
        (values, extra)
        for values in configs
        for extra in itertools.product(*(a.values for a in input_axes))
    ]
    points: list[Point] = []
    per_token = per_token_formula is not None
    flops = keys.index("flops") if "flops" in keys else None
    if formulas is not None:
        if per_token and per_token_formula is not None:
            formulas["flops"] = per_token_formula  # evaluated per token, as shown
        names = sorted(
            {n for f in formulas.values() if isinstance(f, Expr) for n in f.free_symbols}
        )
        if all(n in configs[first] or n in INPUT_SIZES.values() for n in names):
            points = _evaluate(formulas, names, configs, input_axes)
            checked = sorted({0, len(points) // 2, len(points) - 1})
            exact_points = [_unit(exact.values(points[i]), points[i], flops, exact, per_token)
                            for i in checked]  # fmt: skip
            if [points[i].values for i in checked] != exact_points:
                points = []  # the formula does not hold over the grid: each point built
    per_forward = False
    if not points:
        formulas = None
        points = [Point(p, exact.values(Point(p, ()))) for p in ((*v, *e) for v, e in grid)]
        if flops is not None:  # one unit for the column: per token where every point divides
            points, per_forward = _per_token(points, flops, exact)
    elif flops is not None and not per_token:
        per_forward = True
    varying_letters = {a.letter for a in axes}
    constant = {
        letter: value
        for letter, value in configs[first].items()
        if isinstance(value, int)
        and all(s.get(letter) == value for s in configs.values())
        and letter not in varying_letters
    }
    columns = tuple(
        Column(
            key,
            "FLOPs per forward" if key == "flops" and per_forward else COLUMNS[key][0],
            COLUMNS[key][1],
            "FLOPs/forward" if key == "flops" and per_forward else COLUMNS[key][2],
            None if formulas is None else _in_varying(formulas[key], constant),
        )
        for key in keys
    )
    declared = {**DERIVED, **{a.letter: f.name for f, a in arguments_of(cls) if a.kind == "size"}}
    used = {n for c in columns if isinstance(c.formula, Expr) for n in c.formula.free_symbols}
    derived = {
        letter: declared[letter]
        for letter in sorted(used - {a.letter for a in axes})
        if letter in declared
    }
    against = None
    if fit is not None:
        points, against = _against(
            cls,
            fixed,
            model_axes,
            input_axes,
            settings,
            cost_settings,
            points,
            fit,
            fit_keys,
            frontier,
        )
    return Sweep(
        fit=against,
        derived=derived,
        model=title
        or cls(**{**fixed, **dict(zip((a.name for a in model_axes), first, strict=True))})
        .model()
        .name,
        axes=tuple(model_axes + input_axes),
        columns=columns,
        points=tuple(points),
        fixed={**constant, **{INPUT_SIZES[k]: v for k, v in settings.items()}},
        settings=cost_settings,
        budget=budget,
    )


def _against(
    cls: type[Architecture],
    fixed: Mapping[str, Any],
    model_axes: list[Axis],
    input_axes: list[Axis],
    settings: Mapping[str, int],
    cost_settings: Mapping[str, Any],
    points: list[Point],
    setting: FitSetting,
    keys: tuple[str, ...],
    frontier: bool,
) -> tuple[list[Point], SweepFit]:
    """Each point's answers against the hardware (one :class:`~shapecalc.analysis.fit.Fit`
    per swept model, asked at each point's batch and context) and, with ``frontier``, each
    swept model's fit frontier."""
    from shapecalc.analysis.sweep_fit import FRONTIER_BATCHES, Frontier, SweepFit, fit_answers

    n = len(model_axes)
    names = [a.name for a in model_axes]
    fits: dict[tuple[int, ...], Any] = {}
    out: list[Point] = []
    for point in points:
        inputs = {**settings}
        inputs.update(zip((a.name for a in input_axes), point.sizes[n:], strict=True))
        batch, seq_len = int(inputs.get("batch", 1)), int(inputs.get("seq_len", 1))
        sizes = point.sizes[:n]
        try:
            found = fits.get(sizes)
            if found is None:
                arguments = {**fixed, **dict(zip(names, sizes, strict=True))}
                model, _ = _priced(cls(**arguments).model(), cost_settings)
                found = fits[sizes] = setting.fit(
                    model,
                    dtype=cost_settings["dtype"],
                    cache=cost_settings["cache"],
                    batch=batch,
                    seq_len=seq_len,
                )
            answers = fit_answers(found, keys, batch, seq_len)
        except InvalidArgumentError as err:
            raise _at(err, [*model_axes, *input_axes], point.sizes) from None
        out.append(dataclasses.replace(point, fit=answers))
    frontiers = tuple(
        Frontier(
            tuple(zip(names, sizes, strict=True)),
            tuple(found.frontier(list(FRONTIER_BATCHES))),
        )
        for sizes, found in fits.items()
        if frontier
    )
    return out, SweepFit(setting, cost_settings["dtype"], keys, frontiers)


def _formulas(
    cls: type[Architecture],
    fixed: Mapping[str, Any],
    axes: list[Axis],
    settings: Mapping[str, int],
    keys: list[str],
    cost_settings: Mapping[str, Any],
) -> dict[str, Dim] | None:
    """Each column's formula in the varying sizes' letters, the others at their values
    (a size derived from a varying one is a floor term, ``⌊H/12⌋``); None when the
    architecture needs a varying size as a number to build its layers."""
    from shapecalc.analysis.cost import analyze
    from shapecalc.core.errors import ShapecalcError

    letters = {a.name: symbol(a.letter) for a in axes if a.name not in INPUT_SIZES}
    try:
        template, priced = _priced(cls(**{**fixed, **letters}).model(), cost_settings)
        cost = None
        if _needs_cost(keys):
            varies = {a.name for a in axes}
            cost = analyze(
                template,
                batch=symbol("B") if "batch" in varies else settings.get("batch", 1),
                seq_len=symbol("T") if "seq_len" in varies else settings.get("seq_len", 1),
                **priced,
            )
            if "state" in keys and any(s.capped for _, s in cost.state):
                return None  # a window caps it: min(T, W) is no formula, each point counted
        formulas = {key: _formula(key, template, cost) for key in keys}
    except ShapecalcError:
        return None
    per = None if cost is None else cost.per_token(cost.forward_flops)
    if "flops" in keys and per is not None:
        formulas["_per_token"] = per
    return formulas


def _letters(cls: type[Architecture]) -> dict[str, str]:
    return {f.name: a.letter for f, a in arguments_of(cls) if a.kind == "size"}


def _configs(
    cls: type[Architecture], fixed: Mapping[str, Any], axes: list[Axis]
) -> dict[tuple[int, ...], dict[str, Dim]]:
    """Each point's sizes by letter, from its config, which checks its rules: each value
    of each axis in a config of its own (every rule of that argument), then every point
    as a variation of the first (the rules between arguments, at every point)."""
    first = tuple(a.values[0] for a in axes)
    names = [a.name for a in axes]
    base = _config(cls, {**fixed, **dict(zip(names, first, strict=True))}, axes, first)
    normal: list[dict[int, Any]] = []
    for i, axis in enumerate(axes):
        seen = {}
        for value in axis.values:
            at = (*first[:i], value, *first[i + 1 :])
            config = _config(cls, {**fixed, **dict(zip(names, at, strict=True))}, axes, at)
            seen[value] = getattr(config, axis.name)
        normal.append(seen)
    out: dict[tuple[int, ...], dict[str, Dim]] = {}
    for values in itertools.product(*(a.values for a in axes)):
        changes = {n: normal[i][v] for i, (n, v) in enumerate(zip(names, values, strict=True))}
        try:
            out[values] = base.varied(changes).sizes()
        except InvalidArgumentError as err:
            raise _at(err, axes, values) from None
    return out


def _config(
    cls: type[Architecture], arguments: dict[str, Any], axes: list[Axis], values: tuple[int, ...]
) -> Architecture:
    missing = [
        f.name
        for f, _ in arguments_of(cls)
        if f.name not in arguments
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        _bad(missing[0], None, f"given: {cls.command} needs {', '.join(missing)}")
    unknown = [k for k in arguments if k not in {f.name for f, _ in arguments_of(cls)}]
    if unknown:
        _bad(unknown[0], arguments[unknown[0]], f"an argument of {cls.command}")
    try:
        return cls(**arguments)
    except InvalidArgumentError as err:
        raise _at(err, axes, values) from None


def _at(
    err: InvalidArgumentError, axes: list[Axis], values: tuple[int, ...]
) -> InvalidArgumentError:
    at = ", ".join(f"{a.name}={v}" for a, v in zip(axes, values, strict=True))
    return InvalidArgumentError(f"at {at}: {err}", field=err.field, value=err.value, rule=err.rule)


def _needs_cost(keys: list[str]) -> bool:
    return any(k not in ("params", "active") for k in keys)


def _formula(key: str, model: Model, cost: Any) -> Dim:
    if key == "params":  # a quantized model's parameters, not the numbers it stores
        return model.parameters
    if key == "active":
        return model.unquantized.active if model.unquantized is not None else model.active
    lines: dict[str, Dim] = {line.label: line.bytes for line in cost.memory}
    if key == "weights":
        return lines["weights"]
    value: Dim
    if key == "training":
        value = cost.training_bytes
    elif key == "activations":
        value = cost.activation_bytes
    elif key == "state":
        value = lines.get("inference state", 0)
    elif key == "inference":
        found = cost.inference_bytes
        if found is None:  # no formula is the largest: each point is counted
            raise InvalidArgumentError(
                "the inference total is no one formula here",
                field="show",
                value="inference",
                rule="a formula",
            )
        value = found
    else:  # forward FLOPs: per token, where it divides, is worked out over the grid
        value = cost.forward_flops
    return value


def _priced(model: Model, settings: Mapping[str, Any]) -> tuple[Model, dict[str, Any]]:
    """The model as the sweep prices it (its weights quantized when asked) and the rest
    of the settings for :func:`~shapecalc.analysis.cost.analyze`."""
    rest = dict(settings)
    weights = rest.pop("weights", None)
    if weights is not None:
        from shapecalc.quant import quantize

        model = quantize(model, weights)
    return model, rest


def _in_varying(formula: Dim, constant: Mapping[str, int]) -> Dim:
    return formula.subs(constant) if isinstance(formula, Expr) else formula


def _evaluate(
    formulas: dict[str, Dim],
    names: list[str],
    configs: dict[tuple[int, ...], dict[str, Dim]],
    input_axes: list[Axis],
) -> list[Point]:
    """Every point of the grid: the compiled formulas called once per point, on the
    point's sizes in the order the formulas take them."""
    evaluate = compiled(formulas, tuple(names))
    letters = [a.letter for a in input_axes]
    where = [letters.index(n) if n in letters else -1 for n in names]
    extras = list(itertools.product(*(a.values for a in input_axes)))
    points = []
    for values, sizes in configs.items():
        fixed = [sizes.get(n) for n in names]
        for extra in extras:
            arguments = [extra[w] if w >= 0 else v for w, v in zip(where, fixed, strict=True)]
            points.append(Point((*values, *extra), evaluate(*arguments)))
    return points


def _unit(
    values: tuple[int, ...], point: Point, flops: int | None, exact: _Exact, per_token: bool
) -> tuple[int, ...]:
    """A point built whole, its FLOPs in the column's unit (per token or per forward)."""
    if flops is None or not per_token:
        return values
    out = list(values)
    out[flops] //= exact.tokens(point)
    return tuple(out)


def _per_token(points: list[Point], index: int, exact: _Exact) -> tuple[list[Point], bool]:
    """Points built one by one: their FLOPs per token (B·T, or B without a sequence) when
    every point divides, else per forward for every point. Returns the points and
    whether they stay per forward."""
    tokens = [exact.tokens(p) for p in points]
    if not all(p.values[index] % t == 0 for p, t in zip(points, tokens, strict=True)):
        return points, True
    return [
        Point(p.sizes, tuple(v // t if i == index else v for i, v in enumerate(p.values)))
        for p, t in zip(points, tokens, strict=True)
    ], False


class _Exact:
    """A point worked out the long way, the model built and analysed: to check the
    formulas on a few points, and to stand in for them if a point disagrees."""

    def __init__(
        self,
        cls: type[Architecture],
        fixed: Mapping[str, Any],
        model_axes: list[Axis],
        input_axes: list[Axis],
        settings: Mapping[str, int],
        keys: list[str],
        cost_settings: Mapping[str, Any],
    ) -> None:
        self.cls, self.fixed, self.keys = cls, fixed, keys
        self.model_axes, self.input_axes = model_axes, input_axes
        self.settings, self.cost_settings = settings, cost_settings

    def values(self, point: Point) -> tuple[int, ...]:
        from shapecalc.analysis.cost import analyze

        n = len(self.model_axes)
        arguments = {
            **self.fixed,
            **dict(zip((a.name for a in self.model_axes), point.sizes[:n], strict=True)),
        }
        model, priced = _priced(self.cls(**arguments).model(), self.cost_settings)
        inputs = {**self.settings}
        inputs.update(zip((a.name for a in self.input_axes), point.sizes[n:], strict=True))
        cost = None
        if _needs_cost(self.keys):
            cost = analyze(
                model,
                batch=inputs.get("batch", 1),
                seq_len=inputs.get("seq_len", 1),
                **priced,
            )
        out = tuple(_formula(key, model, cost) for key in self.keys)
        return tuple(v if isinstance(v, int) else -1 for v in out)

    def tokens(self, point: Point) -> int:
        """B·T at the point (B without a sequence): what FLOPs per token divide by."""
        n = len(self.model_axes)
        at = {**self.settings}
        at.update(zip((a.name for a in self.input_axes), point.sizes[n:], strict=True))
        batch = int(at.get("batch", 1))
        return batch * int(at.get("seq_len", 1)) if self.cls.sequence else batch
