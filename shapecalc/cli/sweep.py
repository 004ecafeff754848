"""``shapecalc sweep COMMAND``: the count, memory and compute over lists and ranges of
sizes, as a table (or JSON, Markdown, CSV) and as charts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click

from shapecalc.cli.group import ShapecalcGroup, engine_error, register
from shapecalc.cli.models import architecture_options
from shapecalc.cli.options import (
    F,
    apply,
    format_option,
    plot_options,
    plot_with_table,
    price_options,
)
from shapecalc.core.errors import ShapecalcError

__all__ = ["sweep"]

#: the cost settings' flags, beside the architecture's sizes
_FLAGS = {
    "seq_len": "--seq-len",
    "batch": "--batch",
    "show": "--show",
    "plot_file": "--plot-file",
    "weights": "--weights",
    "frontier": "--frontier",
    "memory_gb": "--memory-gb",
    "bandwidth_gbs": "--bandwidth-gbs",
    "reserve_gb": "--reserve-gb",
    "utilization": "--gpu-memory-utilization",
}


@click.group("sweep", cls=ShapecalcGroup)
def sweep() -> None:
    """How the parameters, memory and compute move as sizes turn: give any size a list
    (--hidden 128,256,512) or a range (--layers 1..4, --hidden 256..1024:256); several
    make a grid. Every point is the model command at those sizes; the formula of each
    column is printed in the sizes that vary. --plot draws it in the terminal,
    --plot-file out.svg (or .png) to a file."""


def sweep_options(*, sequence: bool, config: bool = False) -> list[Callable[[F], F]]:
    """What every sweep takes beside the model's sizes: --show, --batch and --seq-len
    (lists or ranges too), the memory's pricing, a --params budget and the pictures."""
    from shapecalc.analysis.sweep import COLUMNS, DEFAULT_SHOW

    options = [
        click.option(
            "--show",
            default=",".join(DEFAULT_SHOW),
            show_default=True,
            metavar="COLUMNS",
            help=f"The columns, comma-separated: {', '.join(COLUMNS)}.",
        ),
        click.option(
            "--batch",
            default="1",
            show_default=True,
            metavar="B",
            help="Batch size B (a list or range too).",
        ),
    ]
    if sequence:
        options.append(
            click.option(
                "--seq-len",
                default=None,
                metavar="T",
                help="Sequence length T (a list or range too). [default: 1024, or the model's "
                "context if shorter]",
            )
        )
    options += price_options("the memory columns", config=config)
    options += [
        click.option(
            "--params",
            "budget",
            default=None,
            metavar="N",
            help="A parameter budget, drawn as a line (10M).",
        ),
        *plot_options("Draw the sweep in the terminal."),
    ]
    return options


def _sweep_command(command: str) -> click.Command:
    from shapecalc.architectures import get
    from shapecalc.cli.fit import hardware_options
    from shapecalc.cli.parallel_sweep import sweep_parallel_options

    cls = get(command)
    options = sweep_options(sequence=cls.sequence) + hardware_options()
    options += sweep_parallel_options()

    @architecture_options(cls, solving=True, required_note="required")
    @format_option(("table", "json", "markdown", "csv"))
    @apply(options)
    def run(
        fmt: str, show: str, budget: str | None, plot: bool, plot_file: str | None, **flags: Any
    ) -> None:
        from shapecalc.analysis.sizing import parse_budget
        from shapecalc.analysis.sweep import sweep as make_sweep

        plot_with_table(plot, fmt)
        from shapecalc.cli.parallel_sweep import run_parallel_sweep

        if run_parallel_sweep(cls, fmt, flags):  # over the parallel sizes: printed
            return
        hardware = _hardware(flags)
        if hardware is not None:
            show, flags["dtype"] = _fit_defaults(show, flags["dtype"])
            if cls.sequence and flags.get("seq_len") is None:
                flags["seq_len"] = str(min([FIT_SEQ_LEN, *_contexts(cls, flags)]))
        cost = {k: flags.pop(k) for k in ("dtype", "training", "mixed_precision")}
        cost["cache"] = flags.pop("latent_cache")
        cost["weights"] = flags.pop("weights")
        inputs: dict[str, Any] = {k: flags.pop(k) for k in ("batch", "seq_len") if k in flags}
        try:
            setting = None if hardware is None else fit_setting(hardware)
            if plot_file:
                from shapecalc.report.plot import check_file

                check_file(plot_file)
            limit = None if budget is None else parse_budget(budget, field="params")
            fixed, varying = _split(cls, flags, inputs)
            _markers(varying, bool(hardware and hardware["frontier"]), plot)
            table = make_sweep(
                cls,
                fixed,
                varying,
                show=tuple(s.strip() for s in show.split(",") if s.strip()),
                batch=inputs.get("batch", "1") if "batch" not in varying else 1,
                seq_len=_seq_len(cls, fixed, varying, inputs) if "seq_len" not in varying else 1,
                budget=limit,
                fit=setting,
                frontier=bool(hardware and hardware["frontier"]),
                **cost,
            )
        except ShapecalcError as err:
            raise engine_error(
                err, {**_FLAGS, "params": "--params", "target": "--params"}
            ) from None
        charts = _charts(table, plot, plot_file)
        _write(table, fmt)
        _draw(charts, plot, plot_file)

    title = cls.title or cls.__name__
    run.__doc__ = (
        f"The {title} over lists and ranges of its sizes (a grid when several vary)."
        f"\n\n    Example: shapecalc sweep {command} {_example(cls)}"
    )
    return click.command(command)(run)


def _split(
    cls: Any, flags: dict[str, Any], inputs: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sizes given one value (fixed) and those given a list or a range (varying);
    an argument left out takes its default, a required one left out is an error."""
    from shapecalc.analysis.sweep import parse_values
    from shapecalc.core.declare import arguments_of
    from shapecalc.core.errors import InvalidArgumentError

    sizes = {f.name for f, a in arguments_of(cls) if a.kind == "size"}
    fixed: dict[str, Any] = {}
    varying: dict[str, Any] = {}
    for name, value in {**flags, **inputs}.items():
        if value is None:
            continue
        if name in sizes or name in inputs:
            text = str(value).strip()
            values = parse_values(text, field=name)  # numbers only: no size names here
            if "," in text or ".." in text:
                varying[name] = values
                continue
            value = values[0]
        if name not in inputs:
            fixed[name] = value
    missing = [
        f.name
        for f, _ in arguments_of(cls)
        if f.name not in fixed
        and f.name not in varying
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        flag = "--" + missing[0].replace("_", "-")
        raise InvalidArgumentError(
            f"missing {', '.join('--' + m.replace('_', '-') for m in missing)}: every size a "
            f"number, or a list or range to sweep",
            field=missing[0],
            value=None,
            rule=f"{flag} is required",
        )
    if not varying:
        raise InvalidArgumentError(
            "nothing to sweep: give a size a list or a range (--hidden 128,256,512 or "
            "--layers 1..4)",
            field="sizes",
            value=None,
            rule="at least one size with several values",
        )
    return fixed, varying


def _seq_len(
    cls: Any, fixed: dict[str, Any], varying: dict[str, Any], inputs: dict[str, Any]
) -> Any:
    """The sequence length: given, else the model's context (the smallest one swept) if
    it has one and it is shorter than 1024, else 1024."""
    given = inputs.get("seq_len")
    if given is not None:
        return given
    if "context" in varying:
        return min(1024, *varying["context"])
    context = fixed.get("context")
    if context is None:
        from shapecalc.core.declare import arguments_of

        defaults = {f.name: f.default for f, _ in arguments_of(cls)}
        context = defaults.get("context")
    return min(int(context), 1024) if isinstance(context, int) else 1024


def _example(cls: Any) -> str:
    """The architecture's example with its hidden size (or first size) as a list."""
    words = (cls.example or "").split()
    for i, word in enumerate(words[:-1]):
        if word == "--hidden":
            value = int(words[i + 1])
            words[i + 1] = ",".join(str(v) for v in (value // 2, value, value * 2))
            return " ".join(words)
    return " ".join(words)


def _write(table: Any, fmt: str) -> None:
    if fmt == "json":
        from shapecalc.report.as_json import sweep_json

        click.echo(sweep_json(table), nl=False)
    elif fmt == "markdown":
        from shapecalc.report.markdown import sweep_markdown

        click.echo(sweep_markdown(table), nl=False)
    elif fmt == "csv":
        from shapecalc.report.as_csv import sweep_csv

        click.echo(sweep_csv(table), nl=False)
    else:
        from shapecalc.report.rich_writer import echo, sweep_table

        echo(sweep_table(table))


def _maker(command: str) -> Any:
    return lambda: _sweep_command(command)


def _hf_command() -> click.Command:
    """``shapecalc sweep hf PATH``: a Hugging Face config's model over lists and ranges
    of the batch, the sequence length and (with --vary) any of its sizes, or, with
    --dp/--tp/--pp/--cp/--ep lists, the per-GPU training memory over the plans."""
    from shapecalc.cli.fit import hardware_options
    from shapecalc.cli.parallel_sweep import sweep_parallel_options

    @click.command("hf")
    @click.argument("path")
    @click.option("--class", "class_name", metavar="NAME", default=None, help="As in shapecalc hf.")
    @click.option(
        "--allow-field", "allow", multiple=True, metavar="FIELD", help="As in shapecalc hf."
    )
    @click.option(
        "--vary",
        multiple=True,
        metavar="SIZE=VALUES",
        help="A size to sweep, by shapecalc's name or the config's (layers=16,32 or "
        "num_hidden_layers=16..32:8). Repeatable.",
    )
    @apply(sweep_options(sequence=True, config=True) + hardware_options())
    @apply(sweep_parallel_options())
    @format_option(("table", "json", "markdown", "csv"))
    def run(
        path: str,
        class_name: str | None,
        allow: tuple[str, ...],
        vary: tuple[str, ...],
        budget: str | None,
        plot: bool,
        plot_file: str | None,
        fmt: str,
        show: str,
        **flags: Any,
    ) -> None:
        """A Hugging Face config's model over lists and ranges of sizes: the batch, the
        sequence length (--seq-len 1024..32768:1024) and, with --vary, any size of the
        model. PATH is a config.json, a folder holding one, or a Hub id in the local cache.

        \b
        Example:
          shapecalc sweep hf meta-llama/Llama-3.1-8B --seq-len 8192,131072 --show weights,state
        """
        from shapecalc.adapters.hf_config import hf_model
        from shapecalc.analysis.sizing import parse_budget
        from shapecalc.analysis.sweep import parse_values
        from shapecalc.analysis.sweep import sweep as make_sweep
        from shapecalc.cli.hf import config_dtype
        from shapecalc.cli.hf_options import config_weights
        from shapecalc.core.errors import InvalidArgumentError

        plot_with_table(plot, fmt)
        hardware = _hardware(flags)
        if hardware is not None:
            show, flags["dtype"] = _fit_defaults(show, flags["dtype"])
        try:
            found = hf_model(path, class_name=class_name, allow=allow)
            if hardware is not None and flags.get("seq_len") is None:
                from shapecalc.adapters.hf_context import config_context

                named = config_context(found.config)  # fit's default: at most the model's
                flags["seq_len"] = str(min(FIT_SEQ_LEN, named[0]) if named else FIT_SEQ_LEN)
            flags["dtype"] = config_dtype(found, flags["dtype"])
            flags["weights"] = config_weights(found, flags.get("weights"), allow)
            from shapecalc.cli.parallel_sweep import run_parallel_sweep_model

            if vary and any(flags.get(k) is not None for k in ("dp", "tp", "pp", "cp", "ep")):
                raise InvalidArgumentError(
                    "a sweep over the parallel sizes holds the model's sizes fixed: leave"
                    " out --vary",
                    field="vary",
                    value=vary[0],
                    rule="--vary or the parallel sizes",
                )
            if run_parallel_sweep_model(found.model(), fmt, flags):  # printed
                return
            from shapecalc.adapters.hf_context import config_context

            context = config_context(found.config)
            setting = None if hardware is None else fit_setting(hardware, *(context or ()))
            if plot_file:
                from shapecalc.report.plot import check_file

                check_file(plot_file)
            fixed = dict(found.architecture.arguments())
            varying = _varied(found, vary)
            inputs = {"batch": flags.pop("batch"), "seq_len": flags.pop("seq_len")}
            for name, value in inputs.items():
                if value is None:
                    continue
                values = parse_values(value, field=name)
                if min(values, default=1) < 1:
                    raise InvalidArgumentError(
                        f"{name} must be an integer >= 1, got {min(values)}",
                        field=name,
                        value=value,
                        rule=f"{name} >= 1",
                    )
                if "," in value or ".." in value:
                    varying[name] = values
            if not varying:
                raise InvalidArgumentError(
                    "nothing to sweep: give --seq-len or --batch a list or a range, or "
                    "--vary SIZE=VALUES",
                    field="vary",
                    value=None,
                    rule="at least one size with several values",
                )
            for name in varying:
                fixed.pop(name, None)
            _markers(varying, bool(hardware and hardware["frontier"]), plot)
            table = make_sweep(
                type(found.architecture),
                fixed,
                varying,
                show=tuple(s.strip() for s in show.split(",") if s.strip()),
                batch=inputs["batch"] if "batch" not in varying else 1,
                seq_len=_seq_len(type(found.architecture), fixed, varying, inputs)
                if "seq_len" not in varying
                else 1,
                budget=None if budget is None else parse_budget(budget, field="params"),
                title=found.model().name,
                cache=flags.pop("latent_cache"),
                fit=setting,
                frontier=bool(hardware and hardware["frontier"]),
                **flags,
            )
        except ShapecalcError as err:
            raise engine_error(err, {**_FLAGS, "params": "--params", "vary": "--vary"}) from None
        charts = _charts(table, plot, plot_file)
        _write(table, fmt)
        _draw(charts, plot, plot_file)

    return run


def _varied(found: Any, vary: tuple[str, ...]) -> dict[str, Any]:
    """--vary SIZE=VALUES, by shapecalc's argument name or the config field's."""
    from shapecalc.analysis.sweep import parse_values
    from shapecalc.core.declare import arguments_of
    from shapecalc.core.errors import InvalidArgumentError

    sizes = {f.name for f, a in arguments_of(type(found.architecture)) if a.kind == "size"}
    by_field = {field: name for name, field in found.names.items()}
    out: dict[str, Any] = {}
    for item in vary:
        key, sep, values = item.partition("=")
        name = key.strip() if key.strip() in sizes else by_field.get(key.strip(), "")
        if not sep or name not in sizes:
            known = ", ".join(sorted(sizes))
            raise InvalidArgumentError(
                f"--vary takes SIZE=VALUES with SIZE one of {known} (or the config's field "
                f"for it), got {item!r}",
                field="vary",
                value=item,
                rule="SIZE=VALUES",
            )
        if name in out:
            raise InvalidArgumentError(
                f"--vary gives {name} twice ({item!r}): give all its values once",
                field="vary",
                value=item,
                rule="each size once",
            )
        try:
            out[name] = parse_values(values, field=name)
        except InvalidArgumentError as err:
            raise InvalidArgumentError(str(err), field="vary", value=item, rule=err.rule) from None
    return out


#: the context a sweep against hardware is asked at unless --seq-len says: fit's
FIT_SEQ_LEN = 4096


def _contexts(cls: Any, flags: dict[str, Any]) -> list[int]:
    """The model's own contexts an architecture's flags give (its ``context``, Whisper's
    decoder's ``target_positions``: as given, else the declared default), for fit's
    default context: at most the model's."""
    import dataclasses

    from shapecalc.analysis.sweep import parse_values

    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    out: list[int] = []
    for name in ("context", "target_positions"):
        value = flags.get(name)
        value = defaults.get(name) if value is None else value
        if isinstance(value, str):
            value = min(parse_values(value, field=name), default=None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out.append(value)
    return out


def _hardware(flags: dict[str, Any]) -> dict[str, Any] | None:
    """The hardware options, taken out of ``flags``: None when no hardware is named
    (--gpu or --memory-gb), refusing then any other of them given."""
    from shapecalc.cli.fit import HARDWARE_FLAGS

    options = {k: flags.pop(k) for k in HARDWARE_FLAGS}
    if options["gpu"] is not None or options["memory_gb"] is not None:
        return options
    ctx = click.get_current_context()
    for name in HARDWARE_FLAGS:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            flag = next(p.opts[0] for p in ctx.command.params if p.name == name)
            raise click.BadParameter(
                f"{flag} asks about the hardware: name it with --gpu NAME or --memory-gb X",
                param_hint=f"'{flag}'",
            )
    return None


def _fit_defaults(show: str, dtype: str) -> tuple[str, str]:
    """Against hardware, what is not given is fit's: the columns of its answers, bf16."""
    from shapecalc.analysis.sweep_fit import DEFAULT_FIT_SHOW

    ctx = click.get_current_context()
    given = {
        name
        for name in ("show", "dtype")
        if (source := ctx.get_parameter_source(name)) is not None
        and source.name in ("COMMANDLINE", "ENVIRONMENT")
    }
    return (
        show if "show" in given else ",".join(DEFAULT_FIT_SHOW),
        dtype if "dtype" in given else "bf16",
    )


def fit_setting(
    hardware: dict[str, Any], context: int | None = None, field: str = "max_position_embeddings"
) -> Any:
    """fit's own setting of the hardware options (its checks, its errors)."""
    from shapecalc.cli import fit

    return fit.fit_setting(hardware, context, field)


def _markers(varying: dict[str, Any], frontier: bool, plot: bool) -> None:
    """Refuse, before anything is worked out, a terminal picture of more frontiers than
    there are markers to tell them apart."""
    from shapecalc.report.plot import MARKERS

    models = 1
    for name, values in varying.items():
        if name not in ("batch", "seq_len"):
            models *= len(set(values))
    if frontier and plot and models > len(MARKERS):
        raise click.BadParameter(
            f"--plot draws at most {len(MARKERS)} frontiers, a marker each; this sweep has "
            f"{models} models: sweep fewer sizes, or drop --plot",
            param_hint="'--plot'",
        )


def _charts(table: Any, plot: bool, plot_file: str | None) -> list[Any]:
    """The pictures asked for, made before anything is printed (a picture that cannot be
    drawn is refused in one line): the sweep's columns, and the fit frontier."""
    if not (plot or plot_file):
        return []
    from shapecalc.report.plot import frontier_chart, sweep_charts

    charts: list[Any] = sweep_charts(table) if table.columns else []
    try:
        if table.fit is not None and table.fit.frontiers:
            charts.append(frontier_chart(table))
    except ShapecalcError as err:
        raise engine_error(err, {**_FLAGS, "plot": "--plot"}) from None
    if not charts:
        flag = "--plot" if plot else "--plot-file"
        raise click.BadParameter(
            "draws the model's columns (--show params, weights, ...) or the fit frontier "
            "(--frontier): this sweep shows neither",
            param_hint=f"'{flag}'",
        )
    return charts


def _draw(charts: list[Any], plot: bool, plot_file: str | None) -> None:
    if not charts:
        return
    from shapecalc.report.plot import draw_file, draw_terminal

    if plot:
        click.echo(draw_terminal(charts))
    if plot_file:
        try:
            draw_file(charts, plot_file)
        except ShapecalcError as err:
            raise engine_error(err, _FLAGS) from None
        click.echo(f"Wrote {plot_file}", err=True)


register(sweep, _maker)
sweep.lazy["hf"] = _hf_command
