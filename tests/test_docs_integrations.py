"""docs/integrations.md is a test: every Python block runs as written (offline, in a fresh
directory), and the page names no figure it does not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "integrations.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE, flags=re.S)


def test_the_page_has_its_examples_and_figures() -> None:
    assert len(BLOCKS) == 6
    assert "_FIGURES" not in PAGE  # every figure placeholder was filled in
    assert "(integrations.md" in (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_blocks_run(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"integrations.md block {index + 1}", "exec"), {})
    out = capsys.readouterr().out
    assert out.strip()  # each example prints what it shows
    assert (tmp_path / "chats.db").exists()
