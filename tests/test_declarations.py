"""Each Hugging Face model type is declared once, in its architecture's module: the
index the CLI reads without importing (``architectures.model_types()``) equals the
modules' declarations, and no other module of shapecalc names a type's config class,
classes or model_type (a mapping written outside its architecture fails here)."""

from __future__ import annotations

import ast
from pathlib import Path

from shapecalc.architectures import command_for, commands, get, model_types
from shapecalc.core.hfmap import model_types_of

ROOT = Path(__file__).resolve().parents[1] / "shapecalc"


def test_the_index_read_from_the_text_is_the_declarations() -> None:
    declared: dict[str, str] = {}
    for command in commands():
        for model_type in model_types_of(get(command)):
            assert model_type not in declared, f"{model_type} declared twice"
            declared[model_type] = command
    assert model_types() == declared


def test_one_type_looked_up_is_the_index_entry() -> None:
    """``command_for`` reads the module named for the type first, then the others, when
    the index is not built yet: the answer is the index's for every declared type, and
    None for a type no module declares."""
    index = model_types()
    try:
        for model_type, command in index.items():
            model_types.cache_clear()  # else command_for answers from the index
            assert command_for(model_type) == command, model_type
        model_types.cache_clear()
        assert command_for("no_such_type") is None
    finally:
        model_types.cache_clear()


def _strings(path: Path) -> set[str]:
    """The string constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    }


def test_no_model_type_is_known_outside_its_architecture() -> None:
    names: set[str] = set()
    for command in commands():
        cls = get(command)
        for t in cls.hf:
            names |= {t.config_class, *t.classes}
            if t.model_type not in (command.replace("-", "_"), cls.owner()):
                names.add(t.model_type)  # a type that is not also a command's name
    found = []
    for path in ROOT.rglob("*.py"):
        if path.parent.name == "architectures":
            continue
        found += [(str(path.relative_to(ROOT)), s) for s in _strings(path) & names]
    assert not found, f"model types named outside their architecture: {sorted(found)}"


def test_the_how_to_shows_a_declaration_as_it_stands() -> None:
    """docs/howto/add-an-architecture.md quotes GPT-NeoX's declaration: the quote is the
    file's own text."""
    page = (ROOT.parent / "docs" / "howto" / "add-an-architecture.md").read_text("utf-8")
    quoted = page.split("## 5.", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    source = (ROOT / "architectures" / "gpt_neox.py").read_text(encoding="utf-8")
    assert "model_type=" in quoted and quoted in source
