"""A message's top-level keys: the ones a provider takes are kept (per role), any other
is refused at append, with nothing written; one stored before that (by an older srt)
is left out of what a format sends, and noted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

import reference_core
import srt
from gateway_support import Harness, harness
from srt import _chain, _core
from srt.message import canonicalize
from srt.wire import build_body
from support import count

#: The keys besides role, content, name, tool_calls and tool_call_id an assistant
#: message may carry (docs/api.md).
ASSISTANT_KEYS = {"refusal", "audio", "function_call", "annotations", "reasoning"}
ASSISTANT_KEYS |= {"reasoning_content"}


def test_the_assistant_keys_are_the_documented_ones() -> None:
    from srt import message

    assert message.ASSISTANT_KEYS == ASSISTANT_KEYS


# -- refused at append ----------------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        {"role": "user", "content": "hi", "foo": 1},
        {"role": "assistant", "content": "hi", "foo": {"a": 1}},
        {"role": "system", "content": "hi", "cache_hint": "x"},
        {"role": "tool", "content": "r", "tool_call_id": "c1", "foo": [1]},
        {"role": "user", "content": [{"type": "text", "text": "hi"}], "foo": True},
    ],
)
def test_an_unknown_key_is_refused_at_append_and_nothing_is_written(
    rt: srt.Runtime, db_path: str, msg: dict[str, Any]
) -> None:
    s = rt.session("s")
    s.append({"role": "user", "content": "first"})
    nodes = count(db_path, "nodes")
    key = next(k for k in msg if k not in ("role", "content", "tool_call_id"))
    with pytest.raises(srt.InvalidMessageError) as info:
        s.append(msg)
    text = str(info.value)
    assert repr(key) in text and "'metadata'" in text and "never sends" in text
    assert count(db_path, "nodes") == nodes
    assert [m["content"] for m in s.messages()] == ["first"]
    # The same data given as metadata is stored beside the message, never sent.
    s.append({**{k: v for k, v in msg.items() if k != key}, "metadata": {key: msg[key]}})
    assert key.encode() not in s.request("openai.chat", model="m", cache=False)
    assert s.messages(metadata=True)[-1]["metadata"] == {key: msg[key]}


@pytest.mark.parametrize("role", ["user", "system", "developer", "tool"])
@pytest.mark.parametrize("key", sorted(ASSISTANT_KEYS))
def test_an_assistant_key_on_another_role_is_refused(role: str, key: str) -> None:
    msg: dict[str, Any] = {"role": role, "content": "x", key: "v"}
    if role == "tool":
        msg["tool_call_id"] = "c1"
    with pytest.raises(srt.InvalidMessageError, match="only an assistant message may carry"):
        canonicalize(msg)


def test_an_unknown_key_with_no_value_is_left_out_as_before() -> None:
    # (what main did: a None carries nothing, and is never stored)
    plain = canonicalize({"role": "user", "content": "hi"})
    assert canonicalize({"role": "user", "content": "hi", "foo": None}) == plain


def test_the_refusal_names_a_long_key_briefly() -> None:
    with pytest.raises(srt.InvalidMessageError) as info:
        canonicalize({"role": "user", "content": "x", "k" * 500: 1})
    assert "k" * 41 not in str(info.value)


# -- what a provider message takes is kept ----------------------------------------------

#: A Chat Completions response as OpenAI sends it (the SDK's model reads it).
_OPENAI_REPLY: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "annotations": [],
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            },
        }
    ],
}


def test_a_sdk_model_dump_appends_and_is_sent_as_it_was(rt: srt.Runtime) -> None:
    message = ChatCompletion.model_validate(_OPENAI_REPLY).choices[0].message
    dumped = message.model_dump()
    assert {"audio", "function_call", "refusal"} <= {k for k, v in dumped.items() if v is None}
    s = rt.session("s")
    s.append([{"role": "user", "content": "go"}, dumped])
    s.append({"role": "tool", "content": "1", "tool_call_id": "call_1"})
    sent = json.loads(s.request("openai.chat", model="gpt-4o"))["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": _OPENAI_REPLY["choices"][0]["message"]["tool_calls"],
        "annotations": [],
    }


def test_a_compatible_servers_reasoning_is_kept_and_sent_back(rt: srt.Runtime) -> None:
    # DeepSeek, llama.cpp (reasoning_content) and vLLM (reasoning) return the reasoning
    # text beside the reply and take it back; the SDK keeps it as an extra field.
    reply = json.loads(json.dumps(_OPENAI_REPLY))
    reply["choices"][0]["message"].update(
        content="4", tool_calls=None, reasoning_content="2+2", reasoning="2+2"
    )
    dumped = ChatCompletion.model_validate(reply).choices[0].message.model_dump()
    s = rt.session("s")
    s.append([{"role": "user", "content": "2+2?"}, dumped])
    sent = json.loads(s.request("openai.chat", model="m", cache=False))["messages"][1]
    assert sent == {
        "role": "assistant",
        "content": "4",
        "annotations": [],
        "reasoning": "2+2",
        "reasoning_content": "2+2",
    }
    # A format with no place for reasoning text from another server leaves it out, noted.
    body = json.loads(s.request("anthropic.messages", model="claude", max_tokens=8))
    assert body["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "4"}]}
    assert any("'reasoning'" in n for n in s.last_build.notes)


# -- the bytes of what was accepted before do not change --------------------------------

#: Messages with only keys srt keeps, and their canonical bytes as srt wrote them before
#: it refused unknown keys (made by that code): a store it wrote stays valid.
_BEFORE: list[tuple[dict[str, Any], bytes]] = [
    ({"role": "user", "content": "hi"}, b'{"role":"user","content":"hi"}'),
    (
        {"role": "tool", "content": "r", "tool_call_id": "c", "name": "n"},
        b'{"role":"tool","content":"r","name":"n","tool_call_id":"c"}',
    ),
    (
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
            "refusal": None,
            "audio": {"id": "audio_1"},
            "function_call": {"name": "g", "arguments": "{}"},
            "annotations": [{"type": "url_citation", "url_citation": {"url": "u", "title": "t"}}],
            "reasoning_content": "think",
            "reasoning": "think",
            "metadata": {"k": 1},
        },
        b'{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function",'
        b'"function":{"name":"f","arguments":"{}"}}],"annotations":[{"type":"url_citation",'
        b'"url_citation":{"title":"t","url":"u"}}],"audio":{"id":"audio_1"},"function_call":'
        b'{"arguments":"{}","name":"g"},"reasoning":"think","reasoning_content":"think"}',
    ),
    (
        {
            "role": "assistant",
            "content": "no",
            "refusal": "I can't",
            "artifacts": [{"provider": "openai", "model": "m", "type": "r", "data": {"id": 1}}],
        },
        b'{"role":"assistant","content":"no","artifacts":[{"provider":"openai","model":"m",'
        b'"type":"r","data":{"id":1}}],"refusal":"I can\'t"}',
    ),
]


@pytest.mark.parametrize("msg, before", _BEFORE)
def test_known_keys_keep_their_bytes(msg: dict[str, Any], before: bytes) -> None:
    assert canonicalize(msg)[0] == before


def test_a_store_with_known_keys_reads_and_builds_as_before(rt: srt.Runtime) -> None:
    s = rt.session("s")
    s.append([m for m, _ in _BEFORE])
    assert s.messages_bytes() == [b for _, b in _BEFORE]
    artifacts = b',"artifacts":[{"provider":"openai","model":"m","type":"r","data":{"id":1}}]'
    sent = [b.replace(artifacts, b"") for _, b in _BEFORE]
    assert s.request("openai.chat", model="m", cache=False) == (
        b'{"model":"m","messages":[' + b",".join(sent) + b"]}"
    )


# -- a key stored before refused keys: left out, noted -----------------------------------

_LEGACY = {"role": "user", "content": "hi", "foo": 1}
_LEGACY_BYTES = b'{"role":"user","content":"hi","foo":1}'  # as srt wrote it before


def _legacy_store(rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch) -> srt.Session:
    """A session holding ``_LEGACY`` as srt wrote it before unknown keys were refused
    (its canonical bytes, hashed and stored by the real store), then a plain reply."""
    real = _chain.canonicalize

    def before(msg: Any, limit: int) -> tuple[bytes, bytes | None]:
        return (_LEGACY_BYTES, None) if msg == _LEGACY else real(msg, limit)

    with monkeypatch.context() as m:
        m.setattr(_chain, "canonicalize", before)
        rt.session("s").append(_LEGACY)
    s = rt.session("s")
    s.append({"role": "assistant", "content": "hello"})
    return s


def test_a_stored_unknown_key_reads_back_and_is_left_out_of_chat(
    rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _legacy_store(rt, monkeypatch)
    assert s.messages_bytes()[0] == _LEGACY_BYTES
    assert s.messages()[0] == _LEGACY
    body = s.request("openai.chat", model="m", cache=False)
    assert json.loads(body)["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    assert any("'foo'" in n and "stored before" in n for n in s.last_build.notes)
    # Built from scratch, the same bytes.
    assert build_body("openai.chat", s.messages_bytes(), model="m") == body


@pytest.mark.parametrize(
    "fmt, kw",
    [
        ("openai.responses", {}),
        ("azure.chat", {}),
        ("anthropic.messages", {"max_tokens": 8}),
        ("bedrock.converse", {}),
    ],
)
def test_every_format_leaves_a_stored_unknown_key_out(
    rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch, fmt: str, kw: dict[str, Any]
) -> None:
    s = _legacy_store(rt, monkeypatch)
    body = s.request(fmt, model="m", **kw)
    assert b"foo" not in body
    assert any("'foo'" in n for n in s.last_build.notes)


@pytest.mark.parametrize(
    "body, plain",
    [
        (b'{"role":"user","content":"a,"}', True),  # a text's last comma, at the end
        (b'{"role":"user","content":"say \\",\\" twice"}', True),  # escaped quotes
        (b'{"role":"user","content":"a,","foo":1}', False),
        (b'{"role":"user","content":"a","}x":1}', False),  # a key that starts with }
        (b'{"role":"user","content":"a","contents":1}', False),  # a known key's prefix
        (b'{"role":"assistant","content":"a","refusal":"no"}', True),
        (b'{"role":"user","content":[{"type":"text","text":"a,"}]}', False),  # false alarm
    ],
)
def test_chat_sends_a_body_as_it_is_only_when_it_holds_no_other_key(
    body: bytes, plain: bool
) -> None:
    fmt = srt.wire.get_format("openai.chat")
    assert fmt.plain(body) is plain
    assert fmt.plain_all([b'{"role":"user","content":"x"}'] * 9 + [body]) is plain
    frag = fmt.render(body, srt.wire.Target("openai", "m"))
    sent = json.loads(frag.data)
    assert sent == {
        k: v for k, v in json.loads(body).items() if k in ("role", "content", "refusal")
    }
    assert (frag.data == body) is (frag.note is None)


_KEYS = (b"role", b"content", b"a", b"ab")


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.text(alphabet='ab,":}\\', max_size=40).map(str.encode), max_size=6),
    st.integers(0, 40),
)
def test_find_odd_key_matches_reference(items: list[bytes], pad: int) -> None:
    # (padded, so the 16-byte steps of the C scan meet a ``,"`` at every offset)
    for got in (items, [b"x" * pad + item for item in items]):
        assert _core.find_odd_key(got, _KEYS) == reference_core.find_odd_key(got, _KEYS)


def test_find_odd_key_refuses_what_is_not_bytes() -> None:
    with pytest.raises(TypeError):
        _core.find_odd_key([b"x", None], _KEYS)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _core.find_odd_key([b"x"], (b"a", "b"))  # type: ignore[arg-type]


# -- any message of allowed keys round-trips ---------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_call = st.fixed_dictionaries(
    {
        "id": _text,
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": _text, "arguments": _text}),
    }
)


@st.composite
def _messages(draw: st.DrawFn) -> dict[str, Any]:
    role = draw(st.sampled_from(["system", "developer", "user", "assistant", "tool"]))
    parts = st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": _text}), max_size=3)
    msg: dict[str, Any] = {"role": role, "content": draw(_text | parts)}
    if draw(st.booleans()):
        msg["name"] = draw(_text)
    if role == "tool":
        msg["tool_call_id"] = draw(_text)
    if role == "assistant":
        if draw(st.booleans()):
            msg["tool_calls"] = draw(st.lists(_call, min_size=1, max_size=2))
            msg["content"] = draw(st.none() | st.just(msg["content"]))
        for key in draw(st.sets(st.sampled_from(sorted(ASSISTANT_KEYS)))):
            msg[key] = draw(_json)
    return msg


@settings(max_examples=300, deadline=None)
@given(_messages())
def test_a_message_of_allowed_keys_round_trips_byte_identically(msg: dict[str, Any]) -> None:
    body = canonicalize(msg)[0]
    back = json.loads(body)
    assert canonicalize(back)[0] == body
    assert canonicalize(dict(reversed(list(back.items()))))[0] == body
    # Chat Completions sends exactly these bytes.
    assert build_body("openai.chat", [body], model="m") == (
        b'{"model":"m","messages":[' + body + b"]}"
    )


# -- the gateway ------------------------------------------------------------------------


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


@pytest.mark.parametrize(
    "item",
    [
        {"type": "message", "role": "user", "content": "hi", "foo": 1},
        {"role": "user", "content": "hi", "foo": 1},
        {"type": "function_call_output", "call_id": "c1", "output": "1", "foo": 1},
    ],
)
def test_a_gateway_input_item_with_an_unknown_field_is_a_400(gw: Harness, item: Any) -> None:
    before = gw.srv.requests.total()
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().responses.create(model="gpt-4o-mini", input=[item])
    err = caught.value
    assert (err.status_code, err.param, err.code) == (400, "input[0]", "unknown_parameter")
    assert isinstance(err.body, dict) and "'input[0].foo'" in err.body["message"]
    assert gw.srv.requests.total() == before
    assert count(gw.rt.path, "messages") == 0


def test_a_gateway_chat_message_with_an_unknown_key_is_a_400(gw: Harness) -> None:
    before = gw.srv.requests.total()
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi", "foo": 1}]
        )
    err = caught.value
    assert (err.status_code, err.code) == (400, "invalid_value"), err.body
    assert isinstance(err.body, dict) and "'foo'" in err.body["message"], err.body
    assert gw.srv.requests.total() == before
