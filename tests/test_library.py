"""The library as a newcomer meets it: ``print(model)`` is the summary table, the
subpackages are attributes of ``shapecalc``, and a saved state dict or checkpoint file
is checked by ``assert_matches`` and by ``--against``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import shapecalc
from tests.test_cli import run

torch = pytest.importorskip("torch")


def test_print_shows_the_table_and_the_total() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    text = str(model)
    lines = text.splitlines()
    assert lines[0] == "LSTM language model (V=65, H=512, L=2)"
    assert lines[1].split() == ["tensor", "shape", "parameters", "formula"]
    assert "lstm.weight_ih_l0  (2048, 512)   1,048,576  4·H²" in text
    assert lines[-1].split() == ["Total", "4,269,121", "16·H²", "+", "2·V·H", "+", "16·H", "+", "V"]
    assert repr(model) == text and "Model(name=" not in repr(model)


def test_print_names_a_tied_tensor_and_a_symbolic_model() -> None:
    text = str(shapecalc.gpt2(vocab=100, hidden=64, layers=2, heads=2))
    assert "lm_head.weight" in text and "shared  tied to transformer.wte.weight" in text
    symbolic = str(shapecalc.lstm_lm(vocab="V", hidden="H", layers=2))
    assert symbolic.splitlines()[0] == "LSTM language model (V, H, L=2)"
    assert symbolic.splitlines()[-1].split()[:2] == ["Total", "16·H²"]


def test_repr_pretty_for_ipython() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=8, layers=1)

    class Printer:
        text_: str = ""

        def text(self, value: str) -> None:
            self.text_ += value

    printer: Any = Printer()
    model._repr_pretty_(printer, False)
    assert printer.text_ == str(model)


def test_printing_loads_neither_rich_nor_click() -> None:
    code = (
        "import sys, shapecalc\n"
        "print(shapecalc.lstm_lm(vocab=65, hidden=512, layers=2))\n"
        "assert not {'rich', 'click', 'torch', 'sympy'} & set(sys.modules), sys.modules.keys()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_subpackages_are_attributes() -> None:
    code = (
        "import shapecalc\n"
        "assert shapecalc.report.pipeline.build_report is shapecalc.build_report\n"
        "assert shapecalc.core.model.Model is shapecalc.Model\n"
        "assert shapecalc.layers.LAYER_KINDS['LSTM'] is shapecalc.LSTM\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def saved(tmp_path: Path) -> dict[str, Path]:
    """An LSTM language model's state dict saved as .pt and .safetensors, and a GPT-2's
    (whose head is tied to its embedding) as save_model writes it (one name of the two)."""
    from safetensors.torch import save_file, save_model

    lstm = shapecalc.build(shapecalc.lstm_lm(vocab=65, hidden=16, layers=2)).to_empty(device="cpu")
    gpt2 = shapecalc.build(shapecalc.gpt2(vocab=100, hidden=16, layers=1, heads=2))
    gpt2 = gpt2.to_empty(device="cpu")
    paths = {
        "pt": tmp_path / "lstm.pt",
        "safetensors": tmp_path / "lstm.safetensors",
        "gpt2": tmp_path / "gpt2.safetensors",
    }
    torch.save(lstm.state_dict(), paths["pt"])
    save_file({k: v.contiguous() for k, v in lstm.state_dict().items()}, paths["safetensors"])
    save_model(gpt2, str(paths["gpt2"]))
    return paths


def test_assert_matches_takes_a_state_dict_and_files(saved: dict[str, Path]) -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=16, layers=2)
    shapecalc.assert_matches(model, torch.load(saved["pt"]))
    shapecalc.assert_matches(model, str(saved["pt"]))
    shapecalc.assert_matches(model, saved["safetensors"])
    shapecalc.assert_matches(shapecalc.gpt2(vocab=100, hidden=16, layers=1, heads=2), saved["gpt2"])
    deeper = shapecalc.lstm_lm(vocab=65, hidden=16, layers=3)
    with pytest.raises(AssertionError, match=r"missing in the file: lstm.weight_ih_l2 \(64, 16\)"):
        shapecalc.assert_matches(deeper, saved["safetensors"])
    diff = shapecalc.compare(deeper, torch.load(saved["pt"]))
    assert (
        len(diff.lines()) == 5 and diff.lines()[-1] == "count: spec 8,673 state dict 6,497 (-2,176)"
    )


def test_a_state_dict_holds_buffers() -> None:
    spec = shapecalc.LAYER_KINDS["BatchNorm2d"](8)
    assert shapecalc.compare(spec, torch.nn.BatchNorm2d(8).state_dict()).ok
    lines = shapecalc.compare(spec, torch.nn.BatchNorm2d(4).state_dict()).lines()
    assert "shape differs: running_mean spec (8,) state dict (4,)" in lines


def test_cli_against(saved: dict[str, Path]) -> None:
    args = ["lstm", "--vocab", "65", "--hidden", "16", "--format", "json"]
    ok = run([*args, "--layers", "2", "--against", str(saved["safetensors"])])
    assert ok.exit_code == 0 and "11 parameters, names and shapes identical" in ok.stderr
    bad = run([*args, "--layers", "3", "--against", str(saved["pt"])])
    assert bad.exit_code == 1
    lines = bad.stderr.splitlines()
    assert lines[0].endswith("lstm.pt differs from LSTM language model in 5 ways:")
    assert lines[1:] == [
        "  missing in the file: lstm.weight_ih_l2 (64, 16)",
        "  missing in the file: lstm.weight_hh_l2 (64, 16)",
        "  missing in the file: lstm.bias_ih_l2 (64,)",
        "  missing in the file: lstm.bias_hh_l2 (64,)",
        "  count: spec 8,673 file 6,497 (-2,176)",
    ]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--against", "/no/such/file.safetensors"], "no such file"),
        (["--hidden", "H", "--against", __file__], "give every size a number"),
        (["--against", __file__], "neither a safetensors file"),
    ],
)
def test_cli_against_refuses_in_one_line(args: list[str], fragment: str) -> None:
    result = run(["lstm", "--vocab", "65", "--hidden", "16", *args])
    assert result.exit_code == 2 and fragment in result.stderr
    assert result.stderr.startswith("Error: Invalid value for '--against'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_array_likes_where_a_name_goes_are_refused_by_argument() -> None:
    """A numpy array where a name goes gets a TypeError naming the argument, not an error
    from inside numpy or a regular expression."""
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    import shapecalc as sc

    model = sc.lstm_lm(vocab=65, hidden=8, layers=1)
    name = np.array(["lstm"])
    calls = [
        (lambda: model.layer(name), "Model.layer: name"),
        (lambda: model.subtotal(name), "Model.subtotal: path"),
        (lambda: model.describe(name), "Model.describe: path"),
        (lambda: sc.solve(sc.lstm_lm, "10M", layers=2, vocab=65, convention=name), "convention"),
        (lambda: sc.from_module(torch.nn.Linear(2, 2), name=name), "from_module: name"),
        (lambda: sc.from_hf_config({"model_type": "gpt2"}, class_name=name), "class_name"),
    ]
    for call, words in calls:
        with pytest.raises(TypeError, match=words):
            call()


def test_every_architecture_function_is_listed_and_reachable() -> None:
    """dir(shapecalc) lists every architecture's library function (read from the modules'
    text), each one reachable as shapecalc.NAME and the function its class declares."""
    import shapecalc
    from shapecalc.architectures import commands, functions, get

    declared = {get(command).function for command in commands()}
    assert set(functions()) == declared
    assert {"qwen_moe", "deepseek", "glm4_moe", "gpt_oss"} <= declared
    assert declared <= set(dir(shapecalc))
    for name in declared:
        assert callable(getattr(shapecalc, name)), name
