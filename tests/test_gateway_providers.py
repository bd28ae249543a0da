"""Every upstream srt speaks, behind the gateway; and Chat Completions pass-through."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway_support import Harness, count, harness


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


@pytest.mark.parametrize(
    ("model", "endpoint"),
    [
        ("gpt-4o-mini", "openai.chat"),
        ("responses/gpt-4o-mini", "openai.responses"),
        ("azure/my-deployment", "azure.chat"),
        ("claude-sonnet-4-5", "anthropic.messages"),
        ("bedrock/anthropic.claude-3-7-sonnet", "bedrock.converse"),
        ("compat/llama", "openai.chat"),
    ],
)
def test_every_upstream(gw: Harness, model: str, endpoint: str) -> None:
    c = gw.client()
    r1 = c.responses.create(model=model, input="first", instructions="be brief")
    r2 = c.responses.create(
        model=model,
        input="second",
        previous_response_id=r1.id,
        instructions="be brief",
        max_output_tokens=50,
    )
    assert gw.srv.log[-1].endpoint.startswith(endpoint.split(".")[0])
    assert r2.output_text.startswith("reply") and r2.usage is not None
    with c.responses.stream(
        model=model, input="third", previous_response_id=r2.id, instructions="be brief"
    ) as s:
        final = s.get_final_response()
    assert final.status == "completed" and final.output_text
    assert gw.srv.log[-1].stream
    assert len(c.responses.input_items.list(final.id, limit=100).data) == 5


def test_chat_completions_pass_through(gw: Harness) -> None:
    c = gw.client()
    msgs = [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}]
    for model in ("gpt-4o-mini", "claude-sonnet-4-5", "bedrock/anthropic.claude-3-7-sonnet"):
        out = c.chat.completions.create(model=model, messages=msgs, max_tokens=20)
        assert out.choices[0].message.content and out.usage is not None
        assert out.model == model
    stream = c.chat.completions.create(
        model="claude-sonnet-4-5",
        messages=msgs,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.startswith("reply") and chunks[-1].usage is not None
    gw.srv.script("*", [{"tool_calls": [{"name": "f", "arguments": {"a": 1}}]}])
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    out = c.chat.completions.create(model="gpt-4o-mini", messages=msgs, tools=tools)
    assert out.choices[0].finish_reason == "tool_calls"
    assert out.choices[0].message.tool_calls[0].function.name == "f"
    assert count(gw.rt.path, "nodes") == 0  # stateless
    assert gw.rt.usage().requests == 5  # but in the ledger


def test_readme_gateway_example_runs(gw: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's five lines, pointed at this test's gateway instead of port 8000."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```py\n(.*?)```", readme, flags=re.S)
    assert len(code.strip().splitlines()) == 5
    code = code.replace("http://127.0.0.1:8000/v1", gw.url)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.startswith("reply 2 to Is it green?")
