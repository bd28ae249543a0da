"""The Python examples of docs/api.md, docs/providers.md and docs/local.md run as written
(offline: in a fresh directory, the providers pointed at ``srt.testing``'s server on
loopback through their environment variables, the local provider on the pinned SmolLM2)
and give what the pages say. README.md's are run by ``test_docs.py``, integrations.md's
and tasks.md's by ``test_docs_integrations.py`` and ``test_docs_tasks.py``. local.md's
option table is ``LocalProvider``'s keywords, both ways."""

from __future__ import annotations

import gc
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.testing import ProviderServer
from support import local_model

DOCS = Path(__file__).resolve().parent.parent / "docs"
KEY = "sk-srt-docs-pages-test"


def blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(encoding="utf-8"), re.S)


def run(code: str, name: str, ns: dict[str, Any] | None = None) -> dict[str, Any]:
    ns = {} if ns is None else ns
    exec(compile(code, name, "exec"), ns)
    return ns


def test_every_page_has_the_examples_this_file_runs() -> None:
    assert (len(blocks("api.md")), len(blocks("providers.md")), len(blocks("local.md"))) == (
        1,
        2,
        2,
    )


def test_api_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    ns = run(blocks("api.md")[0], "docs/api.md")
    body = json.loads(ns["body"])
    assert body["model"] == "claude-sonnet-4-5"
    (user,) = body["messages"]
    assert user["role"] == "user" and [b["text"] for b in user["content"]] == ["hi"]
    assert ns["s"].last_build.format == "anthropic.messages"
    low, high = (float(x) for x in capsys.readouterr().out.strip("()\n").split(","))
    assert 0 < low <= high  # the predicted cost of 10,000 in / 8,000 out tokens, in USD
    ns["rt"].close()


def test_providers_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first example sends through ``srt.OpenAI()`` and streams through
    ``srt.Anthropic()``, both from their environment; the second prices the ledger."""
    monkeypatch.chdir(tmp_path)
    first, prices = blocks("providers.md")
    with ProviderServer(api_key=KEY) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        # The example hands ``srt.OpenAI()`` straight to a call, as a script would, and
        # never closes it: its pooled socket is closed when it is collected, with a
        # ResourceWarning that says so; that is the example's style, not a leak in srt.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            ns = run(first, "docs/providers.md block 1")
            s, reply = ns["s"], ns["reply"]
            messages = s.messages()
            usage = s.usage()
            ns["rt"].close()
            ns.clear()
            gc.collect()
        assert srv.errors == []
    assert isinstance(reply, srt.Reply)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "assistant"]
    assert messages[2] == reply.message
    out = capsys.readouterr().out
    assert out.startswith(messages[3]["content"])  # the streamed deltas, printed
    assert usage.requests == 2 and usage.errors == 0

    ns = run(prices, "docs/providers.md block 2")
    report = ns["report"]
    assert isinstance(report, srt.Savings)
    assert report.requests == 2 and report.priced_requests == 2  # the first example's calls
    assert report.careful.name == "careful" and report.no_cache.name == "no_cache"


def test_local_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both blocks of docs/local.md on the real model; saved states go to a temporary
    cache directory (``state_dir``'s default is the user cache)."""
    local_model()  # installs the pinned server and model if missing, as test_local does
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    python, bench = blocks("local.md")
    ns = run(python, "docs/local.md block 1")
    stats = ns["p"].calls[-1]
    assert stats.session == "garden" and stats.prompt_tokens > 0
    assert str(stats) in capsys.readouterr().out
    assert ns["reply"].message["role"] == "assistant"
    assert ns["p"].pid is None  # the with block stopped the server
    ns["rt"].close()

    ns = run(bench, "docs/local.md block 2")
    p = ns["p"]
    assert p.calls[-1].prompt_n + p.calls[-1].cache_n == p.calls[-1].prompt_tokens
    assert ns["s"].messages()[-1]["role"] == "assistant"
    assert ns["missing"]() is None
    assert Path(ns["default_model"]()) == Path(p.model_path)


def test_local_options_table_is_the_constructors() -> None:
    """docs/local.md's option table names every keyword ``LocalProvider`` takes, and no
    other; a plain number or ``True``/``False`` in its default column is the default."""
    import inspect

    from srt.providers.local import LocalProvider

    text = (DOCS / "local.md").read_text(encoding="utf-8")
    table = text.split("| option | default | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| ((?:`\w+`(?:, )?)+) \| ([^|]*) \|", table, flags=re.M)
    documented = {n: d.strip() for names, d in rows for n in re.findall(r"`(\w+)`", names)}
    params = inspect.signature(LocalProvider).parameters
    taken = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD}
    assert set(documented) == taken
    for name, default in documented.items():
        plain = default.replace("`", "")
        if re.fullmatch(r"\d+|True|False", plain):
            assert repr(params[name].default).removesuffix(".0") == plain, name
