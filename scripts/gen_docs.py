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

import os
import re
import sys
from pathlib import Path

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


def cli_reference() -> str:
    """docs/cli.md: every command's own --help."""
    from docs_facts import cli

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
        "Generated from the commands' own help (`python scripts/gen_docs.py`). Sizes take an",
        "integer or a size name (`H`); bad input prints one line, `Error: ...`, and exits 2.",
        "",
    ]
    for command in commands:
        name = " ".join(["shapecalc", *command])
        lines += [f"## {name}", "", "```text", cli([*command, "--help"]), "```", ""]
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
        howto_facts,
        page_facts,
        transformer_facts,
    )
    from docs_pictures import sweep_facts

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
    nav = [f"      - {cls.title or cls.command}: architectures/{cls.command}.md" for cls in classes]
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
    }
    templates = Path(__file__).resolve().parent / "templates"
    for template in sorted(templates.rglob("*.md")):
        text = fill(template.read_text(encoding="utf-8"), values)
        files[docs / template.relative_to(templates)] = text
    files[docs / "cli.md"] = cli_reference()
    return files


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
