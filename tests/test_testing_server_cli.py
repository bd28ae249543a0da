"""The test server's command line: ``python -m srt.testing`` and ``python -m
srt.testing.server`` serve ``ProviderServer`` in the foreground, each of its options
(``--imitate``, ``--context-window``, ``--no-responses-state``) as its argument."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rel_support.waits import line_of
from srt.testing._cli import parser

OPENAI_H = {"Authorization": "Bearer sk-test"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
LONG = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 800}]}


@contextlib.contextmanager
def serving(module: str, *args: str) -> Iterator[str]:
    """``python -m module --port 0 args...`` until the block ends; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = line_of(proc.stdout, "the server's URL line").strip()
        assert url.startswith("http://127.0.0.1:")
        yield url
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0  # SIGTERM ends it cleanly
        if proc.stdout is not None:
            proc.stdout.close()


def post(module: str, args: list[str], bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Each of ``bodies`` posted (to ``/v1/responses`` if it has ``input``, else to
    ``/v1/chat/completions``) to the server ``python -m module args`` runs."""
    with serving(module, *args) as url, httpx.Client(timeout=10) as c:
        return [
            c.post(
                url + ("/v1/responses" if "input" in b else "/v1/chat/completions"),
                json=b,
                headers=OPENAI_H,
            )
            for b in bodies
        ]


@pytest.mark.parametrize("module", ["srt.testing", "srt.testing.server"])
def test_main_serves_in_the_foreground(module: str) -> None:
    [r] = post(module, [], [CHAT])
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"


@pytest.mark.parametrize("module", ["srt.testing", "srt.testing.server"])
def test_imitate_picks_whose_refusal_an_over_long_prompt_gets(module: str) -> None:
    r, short = post(module, ["--context-window", "50", "--imitate", "llama.cpp"], [LONG, CHAT])
    err = r.json()["error"]
    assert r.status_code == 400 and err["type"] == "exceed_context_size_error"
    assert err["n_ctx"] == 50 and err["n_prompt_tokens"] > 50
    assert short.status_code == 200
    [r] = post(module, ["--context-window", "50", "--imitate", "vllm"], [LONG])
    err = r.json()["error"]
    assert r.status_code == 400 and err["type"] == "BadRequestError" and err["code"] == 400
    assert "maximum context length is 50 tokens" in err["message"]
    [r] = post(module, ["--context-window", "50"], [LONG])  # OpenAI's own, by default
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_no_responses_state_refuses_previous_response_id() -> None:
    body = {"model": "gpt-4o", "input": "hi", "previous_response_id": "resp_1"}
    [r] = post("srt.testing", ["--no-responses-state"], [body])
    assert r.status_code == 400 and "previous_response_id" in r.json()["error"]["message"]


def test_azure_deployment_names_the_model_a_deployment_runs() -> None:
    body = {"model": "prod-chat", "messages": [{"role": "user", "content": "hi"}]}
    args = ("--azure-deployment", "prod-chat=gpt-4o-2024-08-06")
    with serving("srt.testing", *args) as url, httpx.Client(timeout=10) as c:
        path = url + "/openai/v1/chat/completions"
        r = c.post(path, json=body, headers={"api-key": "k"})
        other = c.post(path, json={**body, "model": "gpt-4o"}, headers={"api-key": "k"})
    assert r.status_code == 200 and r.json()["model"] == "gpt-4o-2024-08-06"
    assert other.json()["model"] == "gpt-4o"  # a deployment named for a model runs it


def test_help_names_every_imitated_server() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "srt.testing", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--imitate {llama.cpp,openai,vllm}" in out
    assert "exceed_context_size_error" in out and "--context-window TOKENS" in out
    assert "--no-responses-state" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--imitate", "ollama"], "invalid choice: 'ollama'"),
        (["--context-window", "0"], "must be at least 1 token"),
        (["--context-window", "lots"], "not a whole number of tokens"),
        (["--azure-deployment", "prod-chat"], "expected NAME=MODEL"),
    ],
)
def test_a_bad_option_is_refused_before_serving(
    args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(args)
    assert exited.value.code == 2 and words in capsys.readouterr().err
