"""Generated docs match what the engine produces now, and README's commands are real."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_generated_docs_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_headline_total_is_the_engine_total() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "4,269,121 parameters" in readme


def _fenced_after(heading: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(re.escape(heading) + r".*?```sh\n(.*?)\n```", readme, re.S)
    assert match, heading
    return match.group(1)


def test_quickstart_and_development_lines() -> None:
    assert _fenced_after("## Quickstart") == (
        "pip install . && shapecalc lstm --layers 2 --hidden 512 --vocab 65"
    )
    development = _fenced_after("## Development")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # .ci/run reads the Development line from README.md and runs it as it stands
    assert "## Development" in ci
    assert development.startswith("pip install -e ") and development.endswith("pytest")


def test_readme_python_example_runs_and_its_comments_are_true() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", readme, re.S)
    assert match
    namespace: dict[str, object] = {}
    checked = 0
    for line in match.group(1).splitlines():
        code, _, comment = line.partition("  # ")
        if not code.strip():
            continue
        if "=" in code.split("(")[0] or code.startswith("import"):
            exec(code, namespace)
            continue
        value = eval(code, namespace)
        expected = comment.split(";")[0].strip()
        assert repr(value) == expected, (code, repr(value), expected)
        checked += 1
    assert checked >= 5


def test_readme_cost_summary_is_what_the_command_prints() -> None:
    from tests.test_cli import run

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"\$ (shapecalc lstm [^\n]*--flops[^\n]*)\n\.\.\.\n(Summary[^\n]*)\n", readme)
    assert match, "README.md lost its --flops example"
    command, summary = match.group(1).split()[1:], match.group(2)
    out = run(command, 200).stdout
    assert summary.split(None, 1)[1] in out


def test_readme_transformer_total_is_what_the_command_prints() -> None:
    from tests.test_cli import run

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"\$ (shapecalc gpt2 [^\n]*)\n\.\.\.\n(Total[^\n]*)\n", readme)
    assert match, "README.md lost its gpt2 example"
    out = run(match.group(1).split()[1:], 200).stdout
    assert match.group(2) in out


def test_language_model_howto_python_runs() -> None:
    """The how-to's Python block: run it, and its names are what it says."""
    page = (ROOT / "docs" / "howto" / "size-a-language-model.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", page, re.S)
    assert match
    namespace: dict[str, object] = {}
    exec(match.group(1), namespace)
    cost, model = namespace["cost"], namespace["model"]
    assert cost.six_n().counted > 6 * model.total  # type: ignore[attr-defined]
    assert 0 < cost.recomputed().peak_bytes < cost.activation_bytes  # type: ignore[attr-defined]


def test_every_command_has_a_section_in_the_cli_reference() -> None:
    from shapecalc.cli import cli

    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        assert f"\n## shapecalc {name}\n" in text, name


def test_long_names_in_tables_may_break_after_their_dots() -> None:
    """A table's long dotted name gets a break opportunity after each dot (not inside a
    range, {0..31}), so a page's table of long names fits its column; prose, a short name
    and a line outside a table are left as they are."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from gen_docs import breakable_names

    page = "\n".join(
        [
            "| transformer.word_embeddings | `transformer.h.{0..31}.self_attention.dense.weight` |",
            "| `lm_head.weight` | a.b |",
            "`transformer.h.{0..31}.self_attention.dense.weight` in prose",
        ]
    )
    assert breakable_names(page).split("\n") == [
        "| transformer.<wbr>word_embeddings | <code>transformer.<wbr>h.<wbr>{0..31}.<wbr>"
        "self\\_attention.<wbr>dense.<wbr>weight</code> |",
        "| `lm_head.weight` | a.b |",
        "`transformer.h.{0..31}.self_attention.dense.weight` in prose",
    ]


def test_architecture_pages_claim_conventions_only_where_they_exist() -> None:
    """compare-conventions refuses the architectures without a Keras and ONNX convention;
    their pages must not send a reader to it."""
    from shapecalc.architectures import commands, get
    from shapecalc.core.choices import PORTABLE
    from shapecalc.report.reference import architecture_page

    for command in commands():
        page = architecture_page(get(command), "")
        claims = f"shapecalc compare-conventions {command}" in page
        assert claims == (command in PORTABLE), command


def test_mkdocs_yml_is_yaml_mkdocs_can_read() -> None:
    """The generated navigation parses: a page title holding ': ' (Mllama's) is quoted,
    as mkdocs' YAML reader needs (its !!python tags are taken as plain values here)."""
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = yaml.load(text, Loader=Loader)
    pages = [p for section in config["nav"] if isinstance(section, dict) for p in section.values()]
    assert pages
