"""What each way in imports: the library nothing heavy, the JSON path no sympy nor torch."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "rich", "click", "sympy")


def imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_import_shapecalc_imports_nothing_heavy() -> None:
    assert imported_after("import shapecalc") == []


def test_concrete_counts_need_no_sympy() -> None:
    code = (
        "import shapecalc\n"
        "m = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2, proj_size=128)\n"
        "assert m.total > 0 and str(m.total_formula)\n"
        "from shapecalc.report.as_json import to_dict\n"
        "to_dict(m)\n"
    )
    assert imported_after(code) == []


def test_json_command_imports_neither_sympy_nor_torch() -> None:
    code = (
        "from shapecalc.cli import cli\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['lstm', '--layers', '2', '--hidden', '512', '--vocab', '65',"
        " '--format', 'json'], standalone_mode=False)\n"
    )
    assert imported_after(code) == ["click"]


def test_table_command_never_imports_torch() -> None:
    code = (
        "from shapecalc.cli import cli\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['lstm', '--layers', '2', '--hidden', '512', '--vocab', '65',"
        " '--explain'], standalone_mode=False)\n"
    )
    assert "torch" not in imported_after(code)
