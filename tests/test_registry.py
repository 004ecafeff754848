"""Adding a layer kind = one registered spec + a hypothesis case + a known-count row; the
docs and the CLI pick it up. This test fails when one of those is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapecalc.layers import LAYER_KINDS
from shapecalc.report.reference import FAMILIES
from tests.layer_cases import CASES
from tests.test_known_counts import KIND_COUNTS

ROOT = Path(__file__).resolve().parent.parent
KINDS = sorted(LAYER_KINDS)


def test_every_case_and_count_is_a_registered_kind() -> None:
    assert set(CASES) <= set(LAYER_KINDS), set(CASES) - set(LAYER_KINDS)
    assert set(KIND_COUNTS) <= set(LAYER_KINDS), set(KIND_COUNTS) - set(LAYER_KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_kind_is_complete(kind: str) -> None:
    cls = LAYER_KINDS[kind]
    assert kind in CASES, f"{kind}: add a hypothesis case to tests/layer_cases.py"
    assert KIND_COUNTS.get(kind), f"{kind}: add a known-count row to tests/test_known_counts.py"
    assert cls.summary, f"{kind}: give it a summary"
    assert cls.family in FAMILIES, f"{kind}: family {cls.family!r} has no docs page"
    page = (ROOT / "docs" / "layers" / f"{cls.family}.md").read_text(encoding="utf-8")
    assert f"\n## {kind}\n" in page, f"{kind}: run python scripts/gen_docs.py"
    # the worked example runs: arguments build, inputs fit
    example = cls(**cls.example)
    assert example.output_shapes(*cls.example_input)
    cls(**cls.formula_args)
