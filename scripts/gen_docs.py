"""Regenerate the parts of the docs that come from the engine.

    python scripts/gen_docs.py           # rewrite them
    python scripts/gen_docs.py --check   # exit 1 if a committed copy differs

The headline command's output in README.md (between the ``headline-output`` markers),
the layer reference in docs/layers/, the CLI reference docs/cli.md, and the pages written
from scripts/templates/ with their numbers filled in by the engine (scripts/docs_facts.py),
and the pictures in docs/images/ (scripts/docs_pictures.py: an SVG is stale when the data
it records is not the engine's now).
tests/test_docs.py runs the check, so a drifted copy fails the tests.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))  # docs_facts beside this script

ROOT = Path(__file__).resolve().parent.parent
HEADLINE = ["lstm", "--layers", "2", "--hidden", "512", "--vocab", "65"]
README_WIDTH = 120
START, END = "<!-- headline-output:start -->", "<!-- headline-output:end -->"


def headline_output(width: int = README_WIDTH) -> str:
    """The headline command's table as a user sees it in a terminal ``width`` wide."""
    from shapecalc.cli import cli

    env = {"COLUMNS": str(width), "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}
    result = CliRunner().invoke(cli, HEADLINE, env=env, prog_name="shapecalc")
    if result.exit_code != 0:
        raise SystemExit(f"the headline command failed: {result.output}")
    return "\n".join(line.rstrip() for line in result.stdout.splitlines()) + "\n"


NAV_START, NAV_END = "      # architectures:start", "      # architectures:end"


def between(text: str, start: str, end: str, lines: list[str]) -> str:
    """``text`` with the lines between the marker lines starting ``start`` and ``end``
    replaced by ``lines``."""
    head, _, rest = text.partition("\n" + start)
    marker, _, rest = rest.partition("\n")
    _, _, tail = rest.partition(end)
    if not marker and not tail:
        raise SystemExit(f"no {start.strip()} ... {end.strip()} block")
    return "\n".join([head, start + marker, *lines, end + tail])


#: the model types `shapecalc hf` reads, listed in README.md from the declarations
TYPES_START, TYPES_END = "<!-- hf-types:start -->", "<!-- hf-types:end -->"


def readme_text(current: str) -> str:
    from shapecalc.adapters.hf_config import supported

    block = f"{START}\n```text\n$ shapecalc {' '.join(HEADLINE)}\n{headline_output()}```\n{END}"
    types = ", ".join(f"`{t}`" for t in supported())
    for start, end, text in ((START, END, block), (TYPES_START, TYPES_END, types)):
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if not pattern.search(current):
            raise SystemExit(f"README.md has no {start} ... {end} block")
        inner = text if start == START else f"{start}{text}{end}"
        current = pattern.sub(lambda _, inner=inner: inner, current)
    return current


def _escape(text: str, table: bool = False) -> str:
    """``text`` as Markdown shows it literally (and inside a table cell when ``table``)."""
    text = re.sub(r"([\\`*_\[\]])", r"\\\1", text).replace("<", "&lt;")
    return text.replace("|", "\\|") if table else text


def _description(command: Any, ctx: Any) -> list[str]:
    """A command's help as Markdown: prose paragraphs joined, ``\\b`` blocks (examples,
    lists) kept line by line in a code block."""
    import inspect

    formatter = ctx.make_formatter()
    command.format_help_text(ctx, formatter)  # fills in what a command writes when shown
    text = inspect.cleandoc((command.help or "").split("\f")[0])
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        if paragraph.startswith("\b"):
            block = paragraph.split("\n")[1:]
            if block and block[0].rstrip().endswith(":") and len(block) > 1:
                lines += [_escape(block[0].strip()), ""]
                block = block[1:]
            block = [line.rstrip() for line in textwrap.dedent("\n".join(block)).split("\n")]
            two_columns = re.compile(r"\S.{0,28}?\s{2,}\S")
            if any(line.lstrip().startswith("shapecalc ") for line in block):
                lines += ["```text", *(fit(line) for line in block), "```", ""]
            elif any(two_columns.match(line) for line in block):  # entries and their text
                entries: list[str] = []
                for line in block:
                    if entries and not two_columns.match(line):
                        entries[-1] += " " + line.strip()  # the entry's text goes on
                    else:
                        entries.append(line)
                lines += ["```text", *(fit(line) for line in entries), "```", ""]
            else:  # prose kept apart from the paragraph before it
                lines += [_escape(" ".join(line.strip() for line in block)), ""]
        elif paragraph.strip():
            lines += [_escape(" ".join(line.strip() for line in paragraph.split("\n"))), ""]
    return lines


def fit(line: str, width: int = 80) -> str:
    """``line`` in lines of at most ``width`` characters, so that no code block scrolls
    sideways in the docs (80 fit at 1280 px): a command continues after `` \\``, a line
    of two columns under its second column, other text under its own indent."""
    if len(line) <= width:
        return line
    indent = len(line) - len(line.lstrip())
    if line.lstrip().startswith("shapecalc "):
        wrapped = textwrap.wrap(
            line, width - 2, subsequent_indent=" " * (indent + 4), break_on_hyphens=False
        )
        return " \\\n".join(wrapped)
    column = re.match(r"\s*\S+(?: \S+)*\s{2,}", line)
    hang = len(column.group(0)) if column else indent
    wrapped = textwrap.wrap(line, width, subsequent_indent=" " * hang, break_on_hyphens=False)
    return "\n".join(wrapped)


def _split_extras(help_text: str) -> tuple[str, str, bool]:
    """An option's help record split into its help, its default and whether it is
    required (click writes them last, ``  [default: X; required]``)."""
    default, required = "", False
    while help_text.endswith("]") and "  [" in help_text:
        at = help_text.rfind("  [")
        extras = help_text[at + 3 : -1]
        help_text = help_text[:at].rstrip()
        rest = []
        for part in re.split(r"; (?=default: |required\b)", extras):
            if part.startswith("default: "):
                default = part[len("default: ") :]
            elif part == "required":
                required = True
            else:
                rest.append(part)
        if rest:
            help_text += f" ({'; '.join(rest)})"
    written = re.search(r" ?\[default: ([^\]]*)\]", help_text)  # a default the help writes
    if written and not default:
        default = written.group(1)
        help_text = (help_text[: written.start()] + help_text[written.end() :]).strip()
    return help_text, default, required


def _takes(param: Any, ctx: Any) -> str:
    import click

    if isinstance(param, click.Option) and param.is_flag:
        return "(a flag)"
    if isinstance(param.type, click.Choice):
        return "one of " + ", ".join(f"`{c}`" for c in param.type.choices)
    return f"`{param.make_metavar(ctx)}`"


def _options_table(command: Any, ctx: Any) -> list[str]:
    import click

    rows = ["| Option | Takes | Default | What it does |", "|---|---|---|---|"]
    for param in command.get_params(ctx):
        if isinstance(param, click.Argument):
            name = f"`{param.make_metavar(ctx)}`"
            help_text, default, required = "the argument in the usage line", "", param.required
            takes = _takes(param, ctx)
        else:
            record = param.get_help_record(ctx)
            if record is None:
                continue
            help_text, default, required = _split_extras(record[1])
            names = [*param.opts, *param.secondary_opts]
            name = ", ".join(f"`{n}`" for n in names)
            takes = _takes(param, ctx)
        if required:
            default = "required"
        default = _escape(default, table=True) if default else ""
        rows.append(f"| {name} | {takes} | {default} | {_escape(help_text, table=True)} |")
    return rows


def _commands_table(group: Any, ctx: Any) -> list[str]:
    rows = ["| Command | What it does |", "|---|---|"]
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        summary = _escape(sub.get_short_help_str(limit=1000), table=True)
        rows.append(f"| `{name}` | {summary} |")
    return rows


def cli_reference() -> str:
    """docs/cli.md: every command, from its own help: what it does, its usage and a table
    of its options (what each takes, its default, its help)."""
    import click

    from shapecalc.architectures import commands as architectures
    from shapecalc.cli import cli as group
    from shapecalc.layers import LAYER_KINDS

    commands: list[list[str]] = [[]]
    for name in group.list_commands(None):  # type: ignore[arg-type]
        commands.append([name])
        if name in ("solve", "compare-conventions"):  # one page of help per architecture
            commands += [[name, architecture] for architecture in architectures()]
    commands += [["layer", kind.lower()] for kind in sorted(LAYER_KINDS)]
    lines = [
        "# Command line",
        "",
        "Generated from the commands' own help (`python scripts/gen_docs.py`); `shapecalc",
        "COMMAND --help` prints the same in a terminal. Sizes take an integer or a size name",
        "(`H`); bad input prints one line, `Error: ...`, and exits 2.",
        "",
    ]
    for path in commands:
        ctx = click.Context(group, info_name="shapecalc", terminal_width=80)
        command: Any = group
        for name in path:
            command = command.get_command(ctx, name)
            ctx = click.Context(command, info_name=name, parent=ctx, terminal_width=80)
        title = " ".join(["shapecalc", *path])
        usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
        lines += [f"## {title}", "", *_description(command, ctx)]
        lines += ["```text", f"Usage: {usage}", "```", ""]
        if isinstance(command, click.Group):
            lines += [*_commands_table(command, ctx), ""]
        lines += [*_options_table(command, ctx), ""]
    return "\n".join(lines)


#: a dotted name (a tensor's, a module's) a table cell holds, in backticks or not
_DOTTED = r"[\w{}\[\]-]+(?:\.{1,2}[\w{}\[\]-]+)+"
#: a dot between two parts of a name (not one of a range's, {0..31})
_BETWEEN = r"(?<!\.)\.(?!\.)"
#: a name at least this long may break after its dots (a shorter one always fits its column)
BREAKABLE = 24


def breakable_names(page: str) -> str:
    """``page`` with a break opportunity (``<wbr>``) after each dot of a long dotted name in
    a table's cells: a browser breaks a cell's text only at a space, so a name of sixty
    characters (Falcon's ``transformer.h.{0..31}.self_attention.query_key_value.weight``)
    would widen its column until the table is wider than the page. A name in backticks
    becomes ``<code>`` (its underscores escaped: Markdown reads the inside of a tag);
    copied, it is the same name, ``<wbr>`` being no character."""
    import re

    def code(match: re.Match[str]) -> str:
        name = match.group(1)
        if len(name) < BREAKABLE:
            return match.group(0)
        return "<code>" + re.sub(_BETWEEN, ".<wbr>", name.replace("_", "\\_")) + "</code>"

    def plain(match: re.Match[str]) -> str:
        name = match.group(1)
        return re.sub(_BETWEEN, ".<wbr>", name) if len(name) >= BREAKABLE else name

    lines = []
    for line in page.split("\n"):
        if line.startswith("| ") and line.endswith(" |"):
            line = re.sub(rf"`({_DOTTED})`", code, line)
            line = re.sub(rf"(?<=\| )({_DOTTED})(?= \|)", plain, line)
        lines.append(line)
    return "\n".join(lines)


def generated() -> dict[Path, str]:
    """Every generated file with the text it should have."""
    from docs_facts import (
        architecture_facts,
        cli,
        compose_facts,
        convention_facts,
        cost_facts,
        facts,
        fill,
        hf_facts,
        home_facts,
        howto_facts,
        page_facts,
        transformer_facts,
    )
    from docs_gguf import gguf_facts
    from docs_lora import lora_facts
    from docs_parallel import model_parallel_facts
    from docs_pictures import sweep_facts
    from docs_train import parallel_facts

    from shapecalc.architectures import commands, get
    from shapecalc.report.reference import (
        FAMILIES,
        architecture_page,
        architectures_index,
        family_page,
        index_page,
    )

    readme = ROOT / "README.md"
    files = {readme: readme_text(readme.read_text(encoding="utf-8"))}
    docs = ROOT / "docs"
    layers = docs / "layers"
    files[layers / "index.md"] = index_page()
    for family in FAMILIES:
        files[layers / f"{family}.md"] = family_page(family)
    classes = [get(command) for command in commands()]
    files[docs / "architectures" / "index.md"] = architectures_index(classes)
    for cls in classes:
        example = cli([cls.command, *cls.example.split(), "--format", "markdown"])
        files[docs / "architectures" / f"{cls.command}.md"] = architecture_page(cls, example)
    mkdocs = ROOT / "mkdocs.yml"
    nav = [
        f"      - {json.dumps(cls.title or cls.command)}: architectures/{cls.command}.md"
        for cls in classes
    ]  # a title quoted (a JSON string is a YAML one): "Llama 3.2 Vision: ..." holds a colon
    files[mkdocs] = between(mkdocs.read_text(encoding="utf-8"), NAV_START, NAV_END, nav)
    values = {
        **facts(),
        **howto_facts(),
        **cost_facts(),
        **convention_facts(),
        **architecture_facts(),
        **compose_facts(),
        **transformer_facts(),
        **hf_facts(),
        **sweep_facts(),
        **page_facts(),
        **home_facts(),
        **gguf_facts(),
        **lora_facts(),
        **model_parallel_facts(),
        **parallel_facts(),
    }
    from docs_fit import sweep_fit_facts

    values.update(sweep_fit_facts(values["solved_hidden"]))
    templates = Path(__file__).resolve().parent / "templates"
    for template in sorted(templates.rglob("*.md")):
        text = fill(template.read_text(encoding="utf-8"), values)
        files[docs / template.relative_to(templates)] = text
    files[docs / "cli.md"] = cli_reference()
    from docs_fit import fit_page

    files[docs / "howto" / "fit.md"] = fit_page()
    from docs_torchvision import torchvision_page

    files[docs / "howto" / "torchvision.md"] = torchvision_page()
    return {
        path: breakable_names(text) if path.is_relative_to(docs) and path.suffix == ".md" else text
        for path, text in files.items()
    }


def main(argv: list[str]) -> int:
    from docs_pictures import data, pictures, recorded, svg

    check = "--check" in argv
    stale = []
    for path, text in generated().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    for path, chart in pictures(ROOT / "docs" / "images").items():
        if recorded(path) != data(chart):  # the data drawn, whatever matplotlib draws it
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(svg(chart), encoding="utf-8")
    for path in stale:
        verb = "differs from the engine's output" if check else "rewritten"
        print(f"{os.path.relpath(path, ROOT)}: {verb}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
