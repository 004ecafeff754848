"""What a newcomer's trial found: each message or count as it should read."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapecalc.adapters.checkpoint import CheckpointError, read_checkpoint


def test_a_gguf_given_as_a_checkpoint_points_to_inspect(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(16))
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(str(path))
    said = str(caught.value)
    assert "`shapecalc inspect FILE.gguf` reads it" in said and "gguf tools" not in said
