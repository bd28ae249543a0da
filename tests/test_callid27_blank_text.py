"""A whitespace-only text (``" "``). Anthropic refuses a text block that holds no other
character ("text content blocks must contain non-whitespace text"), Bedrock one that is
blank ("The text field in the ContentBlock object ... is blank"), and srt.testing does
as they do. srt treats it as it treats the empty text: a part beside others and an
assistant message of nothing else are left out (noted), a user, system or tool message
of nothing else is refused up front, nothing sent or stored; on ``_core``'s plain-text
fast path too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

import srt
from gateway_support import Harness, harness, last_sent, refused_400
from srt import _core
from srt.errors import UnsupportedFeatureError
from srt.wire import get_format
from support import SRV_KEY, made, provider_on

BLOCKS = ["anthropic", "bedrock"]
BLANKS = [" ", "\n\t ", "\u00a0\u3000", " \r\n\u2028 \f\u000b"]


def _texts(body: dict[str, Any]) -> list[list[str]]:
    return [
        [b["text"] for b in m["content"] if "text" in b and b.get("type", "text") == "text"]
        for m in body["messages"]
    ]


def test_srt_testing_refuses_a_blank_text_block_as_anthropic_does(srv: Any) -> None:
    a = anthropic.Anthropic(base_url=srv.url, api_key=SRV_KEY, max_retries=0)
    blocks: Any = [{"type": "text", "text": " \n"}, {"type": "text", "text": "hi"}]
    with a:
        with pytest.raises(anthropic.BadRequestError, match="must contain non-whitespace text"):
            a.messages.create(
                model="claude-opus-4-8",
                max_tokens=16,
                messages=[{"role": "user", "content": blocks}],
            )
        with pytest.raises(anthropic.BadRequestError, match="must contain non-whitespace text"):
            a.messages.create(
                model="claude-opus-4-8",
                max_tokens=16,
                system=[{"type": "text", "text": "  "}],
                messages=[{"role": "user", "content": "hi"}],
            )
    converse = httpx.post(
        f"{srv.url}/model/anthropic.claude-x/converse",
        headers={"Authorization": f"Bearer {SRV_KEY}"},
        json={"messages": [{"role": "user", "content": [{"text": " \n"}, {"text": "hi"}]}]},
    )
    assert converse.status_code == 400 and "is blank" in converse.json()["message"]


@pytest.mark.parametrize("kind", BLOCKS)
@pytest.mark.parametrize("blank", BLANKS)
def test_a_blank_text_alone_is_refused_before_anything_is_sent(
    rt: srt.Runtime, srv: Any, kind: str, blank: str
) -> None:
    """A plain text message (``_core``'s fast path) and a message of parts alike."""
    p = made(provider_on(kind, srv.url, SRV_KEY))
    model = "claude-sonnet-4-5" if kind == "anthropic" else "anthropic.claude-x"
    s = rt.session("s")
    for given in (blank, [{"type": "text", "text": blank}]):
        before = len(srv.log)
        with pytest.raises(UnsupportedFeatureError, match="empty text block"):
            s.send(p, model=model, append=[{"role": "user", "content": given}])
        assert len(srv.log) == before and s.messages() == []
    # a system prompt of whitespace alone too
    s.append({"role": "system", "content": blank})
    with pytest.raises(UnsupportedFeatureError, match="empty text block"):
        s.send(p, model=model, append=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("kind", BLOCKS)
def test_a_blank_part_beside_others_and_a_blank_reply_are_left_out(
    rt: srt.Runtime, srv: Any, kind: str
) -> None:
    p = made(provider_on(kind, srv.url, SRV_KEY))
    model = "claude-sonnet-4-5" if kind == "anthropic" else "anthropic.claude-x"
    s = rt.session("s")
    s.append({"role": "user", "content": "first"})
    s.append({"role": "assistant", "content": " \n"})  # (a reply of whitespace alone)
    s.append({"role": "user", "content": "second"})
    s.append({"role": "assistant", "content": [{"type": "text", "text": "\t"}]})
    parts = [{"type": "text", "text": " "}, {"type": "text", "text": "hi"}]
    r = s.send(p, model=model, append=[{"role": "user", "content": parts}])
    assert r.message["role"] == "assistant"
    body = srv.log[-1].body
    if kind == "anthropic":
        assert _texts(body) == [["first", "second", "hi"]]
    else:
        assert [[b["text"] for b in m["content"]] for m in body["messages"]] == [
            ["first", "second", "hi"]
        ]
    # stored as given
    assert s.messages()[-2]["content"] == parts


def test_the_fast_path_sends_a_blank_text_to_render() -> None:
    """``text_frags`` renders a text in C only when it holds a character that is not
    whitespace; any other goes to the format's ``render``, which decides."""
    wraps = get_format("anthropic.messages").text_frags().wraps

    def code(text: str) -> int:
        body = srt.message.canonical_text({"role": "user", "content": text}, 1 << 20)
        assert body is not None
        codes, _ = _core.text_frags([body], wraps, False)
        return codes[0]

    for blank in [*BLANKS, "", "\u0085", "\u1680\u2000\u200a\u202f\u205f\u2029", "\u001c"]:
        assert blank.isspace() or blank == ""
        assert code(blank) == 255, repr(blank)
    for text in ["hi", " x", "\n\n.", '"', "\u00a0é", "你好", "\t\\", "\u0008", " ©x"]:
        assert code(text) == 2, repr(text)
    # a format that takes such texts (OpenAI) keeps them on the fast path
    assert _core.text_frags([b'{"role":"user","content":" "}'], (None,) * 4, True)[0][0] == 2


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "bedrock/anthropic.claude-x"])
def test_the_gateway_leaves_out_a_blank_part_and_refuses_a_blank_message(
    gw: Harness, model: str
) -> None:
    # (first: refused_400 checks that nothing at all is stored)
    err = refused_400(
        gw, "input", "invalid_value", model=model, input=[{"role": "user", "content": " \n"}]
    )
    assert "cannot express an empty text block" in err.message
    given: Any = [
        {"role": "user", "content": "first"},
        {
            "role": "user",
            "content": [{"type": "input_text", "text": " "}, {"type": "input_text", "text": "hi"}],
        },
    ]
    r = gw.client().responses.create(model=model, input=given)
    assert r.status == "completed"
    sent = last_sent(gw)["messages"]
    assert [[b["text"] for b in m["content"] if "text" in b] for m in sent] == [["first", "hi"]]
