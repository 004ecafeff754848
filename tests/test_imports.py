"""What each way in imports: the library nothing heavy, the JSON path no sympy nor torch,
a command only its own architecture; and the layout: floors importing only from below,
no import circle, rich only in the rich writer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "rich", "click", "sympy")


def imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_import_shapecalc_imports_nothing_heavy() -> None:
    assert imported_after("import shapecalc") == []


def test_concrete_counts_and_formulas_need_no_sympy() -> None:
    code = (
        "import shapecalc\n"
        "m = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2, proj_size=128)\n"
        "assert m.total > 0 and str(m.total_formula)\n"
        "assert str(shapecalc.lstm_lm(vocab='V', hidden='H', layers=2).total.diff('H'))\n"
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


# -- the layout: floors, each importing only from below, and no circle ---------------------

PACKAGE = Path(__file__).resolve().parent.parent / "shapecalc"
#: the floors of the package, lowest first; a module imports its own floor or lower ones
FLOORS = [
    ("core",),
    ("layers",),
    ("architectures", "analysis", "quant", "adapt"),
    ("adapters",),
    ("report",),
    ("cli",),
]


def floor_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # shapecalc itself (lazy names) and shapecalc.__main__
    return next((i for i, names in enumerate(FLOORS) if parts[1] in names), None)


def imports() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports (lazy imports too;
    ``if TYPE_CHECKING:`` blocks are not imports)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = "shapecalc." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for stmt in block.body
            for node in ast.walk(stmt)
        }
        found: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not target.startswith(name + "."):
                    found.add(target)
        graph[name] = found
    return graph


def test_dependencies_point_down_only() -> None:
    wrong = []
    for module, targets in imports().items():
        mine = floor_of(module)
        for target in targets:
            theirs = floor_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_no_import_circles() -> None:
    graph = imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, circles


def test_rich_is_imported_by_the_rich_writer_only() -> None:
    users = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "rich" or n.startswith("rich.") for n in names):
                users.append(path.relative_to(PACKAGE).as_posix())
    assert set(users) == {"report/rich_writer.py"}, users


def test_a_model_command_loads_only_its_own_architecture() -> None:
    code = (
        "from shapecalc.cli import cli\n"
        "import contextlib, io, sys\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['gru', '--hidden', '8', '--vocab', '5', '--format', 'json'],"
        " standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith('shapecalc.architectures.')"
        " or m.startswith('shapecalc.analysis.') or m.startswith('shapecalc.adapters.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (
        done.stdout.split("\n")[-2]
        == "['shapecalc.architectures._recurrent', 'shapecalc.architectures.gru']"
    )
