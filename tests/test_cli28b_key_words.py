"""From the command line, a provider without its key said "OpenAI needs an API key:
pass api_key= or set OPENAI_API_KEY": Python advice to someone who cannot pass
``api_key=``. The CLI now names its own ways (the variable, or ``--key-env VAR``; for
Bedrock's region ``--region``), and the Python API keeps its wording."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import srt
from support import cli_env

KEY_WORDS = "or name the variable holding it with --key-env VAR"


def _prompt(tmp_path: Path, *argv: str, **env: str) -> tuple[int, str, str]:
    db = tmp_path / "srt.db"
    r = subprocess.run(
        [sys.executable, "-m", "srt", "prompt", *argv, "Hello?"],
        env=cli_env(db, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not db.exists()  # (refused before the database is opened)
    return r.returncode, r.stdout, r.stderr


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], "OpenAI needs an API key: set OPENAI_API_KEY, " + KEY_WORDS),
        (
            ["--provider", "responses"],
            "OpenAI needs an API key: set OPENAI_API_KEY, " + KEY_WORDS,
        ),
        (
            ["--provider", "anthropic"],
            "Anthropic needs an API key: set ANTHROPIC_API_KEY, " + KEY_WORDS,
        ),
        (
            ["--provider", "azure", "--model", "m", "--base-url", "https://x.openai.azure.com"],
            "Azure OpenAI needs an API key: set AZURE_OPENAI_API_KEY, " + KEY_WORDS,
        ),
    ],
    ids=["openai", "responses", "anthropic", "azure"],
)
def test_a_missing_key_names_the_command_lines_ways(
    tmp_path: Path, argv: list[str], said: str
) -> None:
    assert _prompt(tmp_path, *argv) == (1, "", f"srt: error: {said}\n")


def test_bedrock_names_region_and_key_env(tmp_path: Path) -> None:
    code, out, err = _prompt(tmp_path, "--provider", "bedrock", "--model", "m")
    assert (code, out) == (1, "")
    assert err == "srt: error: Bedrock needs a region: pass --region or set AWS_REGION\n"
    code, out, err = _prompt(tmp_path, "--provider", "bedrock", "--model", "m", AWS_REGION="x-1")
    assert (code, out) == (1, "")
    assert err == (
        "srt: error: Bedrock needs an API key (AWS_BEARER_TOKEN_BEDROCK, or --key-env VAR) "
        "or AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)\n"
    )


def test_the_python_api_keeps_its_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(srt.ConfigError) as exc:
        srt.OpenAI()
    assert str(exc.value) == "OpenAI needs an API key: pass api_key= or set OPENAI_API_KEY"
