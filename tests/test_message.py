"""Canonical message bytes: normalisation, validation and exact round trips."""

from __future__ import annotations

import base64
import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
from srt import _core
from srt.errors import InvalidMessageError
from srt.message import DEFAULT_MAX_MESSAGE_BYTES, ROLES, canonical_text, canonicalize, dumps
from support import BAD_MESSAGES, nested, snapshot


def canon(msg: Any, **kw: Any) -> bytes:
    return canonicalize(msg, **kw)[0]


def compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def reorder(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every dict's keys in a shuffled insertion order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: reorder(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [reorder(v, rng) for v in value]
    return value


RICH: dict[str, Any] = {
    "role": "assistant",
    "content": [
        {"type": "text", "text": "look at this"},
        {"type": "image_url", "image_url": {"url": "https://e.x/a.png", "detail": "high"}},
        {"type": "input_audio", "input_audio": {"format": "wav", "data": "AAAA"}, "z": [1, 2.5]},
        {"type": "image", "data": b"\x89PNG\r\n", "media_type": "image/png", "detail": "low"},
    ],
    "name": "alice",
    "audio": {"b": 1, "a": {"y": None, "x": True}},
    "annotations": [{"q": 1, "p": 2}],
    "metadata": {"trace": "abc", "n": 3},
}

RICH_NORMALISED: dict[str, Any] = {
    "role": "assistant",
    "content": [
        {"type": "text", "text": "look at this"},
        {"type": "image_url", "image_url": {"detail": "high", "url": "https://e.x/a.png"}},
        {"input_audio": {"data": "AAAA", "format": "wav"}, "type": "input_audio", "z": [1, 2.5]},
        {
            "type": "image_url",
            "image_url": {
                "url": "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n").decode(),
                "detail": "low",
            },
        },
    ],
    "name": "alice",
    "annotations": [{"p": 2, "q": 1}],
    "audio": {"a": {"x": True, "y": None}, "b": 1},
}


# -- normalisation ----------------------------------------------------------------------


def test_rich_message_canonical_bytes_are_compact_json_of_normalised_form() -> None:
    body, meta = canonicalize(RICH)
    assert body == compact(RICH_NORMALISED)
    assert body == dumps(RICH_NORMALISED)
    assert meta == compact({"n": 3, "trace": "abc"})
    assert json.loads(body) == RICH_NORMALISED
    # Key order of the bytes, not just equality of the parsed value.
    assert list(json.loads(body)) == ["role", "content", "name", "annotations", "audio"]


@settings(max_examples=300)
@given(st.randoms(use_true_random=False))
def test_key_order_does_not_change_canonical_bytes(rng: random.Random) -> None:
    # Every dict is reshuffled: the message, its parts, nested image_url and unknown parts.
    shuffled = reorder(RICH, rng)
    assert shuffled == RICH
    assert canon(shuffled) == canon(RICH) == compact(RICH_NORMALISED)


def test_top_level_key_order_is_fixed() -> None:
    orders = itertools.permutations(["tool_call_id", "content", "role", "name"])
    bodies = set()
    for order in orders:
        full = {"role": "tool", "content": "r", "name": "n", "tool_call_id": "c1"}
        bodies.add(canon({k: full[k] for k in order}))
    assert bodies == {b'{"role":"tool","content":"r","name":"n","tool_call_id":"c1"}'}
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    reply = {
        "role": "assistant",
        "content": "r",
        "name": "n",
        "tool_calls": [call],
        "refusal": "no",
        "annotations": [],
    }
    bodies = {canon({k: reply[k] for k in order}) for order in itertools.permutations(reply)}
    assert bodies == {
        b'{"role":"assistant","content":"r","name":"n","tool_calls":[{"id":"c1","type":'
        b'"function","function":{"name":"f","arguments":"{}"}}],"annotations":[],"refusal":"no"}'
    }


def test_plain_text_message() -> None:
    body = canon({"content": "héllo \x00 𝄞", "role": "user"})
    assert body == '{"role":"user","content":"héllo \\u0000 𝄞"}'.encode()
    assert body == compact({"role": "user", "content": "héllo \x00 𝄞"})


@pytest.mark.parametrize("role", sorted(ROLES - {"tool"}))
def test_every_role_is_accepted(role: str) -> None:
    assert json.loads(canon({"role": role, "content": "x"})) == {"role": role, "content": "x"}


def test_text_parts_are_normalised() -> None:
    msg = {"role": "user", "content": [{"text": "a", "type": "text"}, {"type": "text", "text": ""}]}
    assert canon(msg) == compact(
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": ""}]}
    )
    # Bytes text is decoded as UTF-8.
    as_bytes = {"role": "user", "content": [{"type": "text", "text": "é".encode()}]}
    assert canon(as_bytes) == compact({"role": "user", "content": [{"type": "text", "text": "é"}]})
    assert canon({"role": "user", "content": "é".encode()}) == canon(
        {"role": "user", "content": "é"}
    )


@settings(max_examples=2000)
@given(
    st.binary(min_size=1, max_size=512),  # (an empty image is refused)
    st.sampled_from(["image/png", "image/jpeg", "image/webp"]),
    st.sampled_from([None, "low", "high", "auto"]),
)
def test_image_bytes_become_a_decodable_data_url(
    data: bytes, media: str, detail: str | None
) -> None:
    part: dict[str, Any] = {"type": "image", "data": data, "media_type": media}
    if detail is not None:
        part["detail"] = detail
    body = canon({"role": "user", "content": [part]})
    out = json.loads(body)["content"][0]
    assert out["type"] == "image_url"
    url = out["image_url"]["url"]
    prefix = f"data:{media};base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :], validate=True) == data
    assert out["image_url"].get("detail") == detail
    # bytearray and memoryview give the same bytes as bytes.
    for alt in (bytearray(data), memoryview(data)):
        assert canon({"role": "user", "content": [{**part, "data": alt}]}) == body


def test_image_media_type_defaults_to_png() -> None:
    out = json.loads(canon({"role": "user", "content": [{"type": "image", "data": b"\x00"}]}))
    assert out["content"][0]["image_url"] == {"url": "data:image/png;base64,AA=="}


def test_image_url_given_as_string() -> None:
    body = canon({"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y"}]})
    assert body == compact(
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y"}}]}
    )


def test_assistant_tool_calls_and_tool_reply() -> None:
    call = {
        "function": {"arguments": '{"city": "Paris"}', "name": "weather"},
        "id": "call_1",
    }
    body = canon({"tool_calls": [call], "content": None, "role": "assistant"})
    expected = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert body == compact(expected)
    # Arguments are an opaque JSON string: kept byte for byte, never re-encoded.
    assert json.loads(body)["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    with_text = canon({"role": "assistant", "content": "checking", "tool_calls": [call]})
    assert json.loads(with_text)["content"] == "checking"
    reply = canon({"tool_call_id": "call_1", "content": "18C", "role": "tool"})
    assert reply == compact({"role": "tool", "content": "18C", "tool_call_id": "call_1"})


def test_message_dataclass_equals_dict() -> None:
    msg = srt.Message(role="user", content="hi", name="n", metadata={"a": 1})
    assert canonicalize(msg) == canonicalize(
        {"role": "user", "content": "hi", "name": "n", "metadata": {"a": 1}}
    )
    call = [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]
    assistant = srt.Message(role="assistant", tool_calls=call)
    assert canon(assistant) == canon({"role": "assistant", "content": None, "tool_calls": call})
    tool = srt.Message(role="tool", content="r", tool_call_id="c")
    assert canon(tool) == canon({"role": "tool", "content": "r", "tool_call_id": "c"})


def test_metadata_is_excluded_from_bytes_and_hash() -> None:
    a = {"role": "user", "content": "same", "metadata": {"user": "a", "ts": 1}}
    b = {"role": "user", "content": "same", "metadata": {"user": "b"}}
    c = {"role": "user", "content": "same"}
    assert canon(a) == canon(b) == canon(c) == compact({"role": "user", "content": "same"})
    assert _core.digest(canon(a)) == _core.digest(canon(c))
    assert canonicalize(a)[1] == compact({"ts": 1, "user": "a"})
    assert canonicalize(c)[1] is None


def test_none_valued_optional_keys_are_dropped() -> None:
    assert canon({"role": "user", "content": "x", "name": None, "extra": None}) == compact(
        {"role": "user", "content": "x"}
    )


def test_canonical_bytes_equal_json_dumps_of_normalised_form() -> None:
    normalised = {"role": "assistant", "content": "x", "audio": {"b": [1, 2.5, None, False, "ü"]}}
    assert canon(normalised) == compact(normalised)
    assert dumps(normalised) == compact(normalised)


# -- rejection ----------------------------------------------------------------------------


@pytest.mark.parametrize("msg", [m for _, m in BAD_MESSAGES], ids=[i for i, _ in BAD_MESSAGES])
def test_bad_message_is_rejected(msg: Any) -> None:
    with pytest.raises(srt.InvalidMessageError) as info:
        canonicalize(msg)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, srt.SrtError)


def test_rejection_never_quotes_the_content() -> None:
    secret = "sk-CANARY-0123456789"
    # (oversize is measured with a small limit below)
    for msg in (
        {"role": "user", "content": secret + "\ud800"},
        {"role": "user", "content": secret.encode() + b"\xff"},
        {"role": "user", "content": [{"type": "text", "text": secret + "\udfff"}]},
        {"role": "user", "content": "x", "name": secret + "\ud800"},
        {"role": "user", "content": "x" + secret * 100},
    ):
        with pytest.raises(srt.InvalidMessageError) as info:
            canonicalize(msg, max_bytes=1000)
        assert "CANARY" not in str(info.value)
        assert "CANARY" not in repr(info.value)


def test_nesting_limit() -> None:
    # The limit is generous (64 levels) but finite.
    ok = {"role": "assistant", "content": "x", "audio": nested(60)}
    assert json.loads(canon(ok))["audio"] == nested(60)
    with pytest.raises(srt.InvalidMessageError):
        canon({"role": "assistant", "content": "x", "audio": nested(70)})
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(srt.InvalidMessageError):
        canon({"role": "assistant", "content": "x", "audio": cyclic})


def test_size_limit_is_configurable() -> None:
    assert DEFAULT_MAX_MESSAGE_BYTES == 32 * 1024 * 1024
    msg = {"role": "user", "content": "x" * 1000}
    size = len(canon(msg))
    assert canon(msg, max_bytes=size) == canon(msg)
    with pytest.raises(srt.InvalidMessageError, match="limit"):
        canon(msg, max_bytes=size - 1)
    # Multi-byte text is measured in bytes, not characters.
    wide = {"role": "user", "content": "€" * 400}  # 1200 bytes of content
    with pytest.raises(srt.InvalidMessageError):
        canon(wide, max_bytes=1000)
    # A list of parts is measured after normalisation.
    parts = {"role": "user", "content": [{"type": "text", "text": "y" * 600}] * 3}
    with pytest.raises(srt.InvalidMessageError):
        canon(parts, max_bytes=1000)


@pytest.fixture
def small_rt(tmp_path: Path) -> Iterator[srt.Runtime]:
    with srt.Runtime(str(tmp_path / "small.db"), max_message_bytes=2048) as runtime:
        yield runtime


def test_runtime_max_message_bytes(small_rt: srt.Runtime) -> None:
    s = small_rt.session("s")
    s.append({"role": "user", "content": "a" * 2000})
    before = snapshot(small_rt.path)
    with pytest.raises(srt.InvalidMessageError):
        s.append({"role": "user", "content": "b" * 2049})
    with pytest.raises(srt.InvalidMessageError):
        s.append({"role": "user", "content": [{"type": "text", "text": "c" * 1500}] * 2})
    assert snapshot(small_rt.path) == before
    assert len(s) == 1


@pytest.mark.parametrize("bad", [0, -1])
def test_runtime_rejects_bad_limits(tmp_path: Path, bad: int) -> None:
    with pytest.raises(srt.ConfigError):
        srt.Runtime(str(tmp_path / "x.db"), max_message_bytes=bad)
    assert not (tmp_path / "x.db").exists()


# -- round trips through the store ---------------------------------------------------------


@pytest.fixture(scope="module")
def shared_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("roundtrip") / "rt.db")


_counter = itertools.count()


@settings(max_examples=150)
@given(
    st.lists(
        st.tuples(st.sampled_from(["system", "developer", "user", "assistant"]), st.text()),
        min_size=1,
        max_size=4,
    )
)
def test_any_valid_text_round_trips_through_a_reopened_store(
    shared_path: str, turns: list[tuple[str, str]]
) -> None:
    msgs = [{"role": role, "content": text} for role, text in turns]
    name = f"s{next(_counter)}"
    with srt.Runtime(shared_path) as rt:
        rt.session(name).append(*msgs)
    with srt.Runtime(shared_path) as rt:
        got = rt.session(name, create=False).messages()
    assert got == msgs
    assert [m["content"] for m in got] == [t for _, t in turns]


@settings(max_examples=150)
@given(
    st.text(),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.text(),
    st.sampled_from(["content", "text-part", "name"]),
)
def test_text_with_a_lone_surrogate_is_rejected_and_nothing_written(
    shared_path: str, before_text: str, surrogate: str, after_text: str, where: str
) -> None:
    text = before_text + surrogate + after_text
    msg: dict[str, Any] = {"role": "user", "content": "fine"}
    if where == "content":
        msg["content"] = text
    elif where == "text-part":
        msg["content"] = [{"type": "text", "text": "ok"}, {"type": "text", "text": text}]
    else:
        msg["name"] = text
    with srt.Runtime(shared_path) as rt:
        s = rt.session("surrogates")
        if len(s) == 0:
            s.append({"role": "system", "content": "history"})
        before = snapshot(shared_path)
        with pytest.raises(srt.InvalidMessageError):
            s.append({"role": "user", "content": "good one first"}, msg)
        assert snapshot(shared_path) == before
        assert s.messages() == [{"role": "system", "content": "history"}]


@given(
    st.sampled_from(["system", "developer", "user", "assistant", "tool", "robot", 3]),
    st.one_of(st.text(), st.text(alphabet=st.characters(codec=None)), st.binary(max_size=8)),
    st.sampled_from([8, 64, DEFAULT_MAX_MESSAGE_BYTES]),
)
def test_canonical_text_is_canonicalize_for_plain_text(role: Any, content: Any, limit: int) -> None:
    """The fast path for {"role", "content": str} gives canonicalize's bytes and errors."""
    msg = {"role": role, "content": content}
    try:
        want: Any = canonicalize(msg, limit)[0]
    except InvalidMessageError as exc:
        want = ("error", str(exc))
    try:
        got: Any = canonical_text(msg, limit)
    except InvalidMessageError as exc:
        got = ("error", str(exc))
    if got is None:  # not its case: a tool message, an unknown role, bytes content
        assert role not in ("system", "developer", "user", "assistant") or not isinstance(
            content, str
        )
    else:
        assert got == want
    assert canonical_text({"role": "user", "content": "x", "name": "n"}) is None
    assert canonical_text([("role", "user")]) is None


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ({"foo": 1}, "the message has no role (its keys: ['foo'])"),
        ({"content": "hi"}, "the message has no role (its keys: ['content'])"),
        ({"role": None, "content": "hi"}, "role must be a string, got NoneType"),
        ({"role": 7, "content": "hi"}, "role must be a string, got int"),
        ({"role": "wizard", "content": "hi"}, "unknown role 'wizard'"),
        ({"role": "w" * 5000, "content": "hi"}, "unknown role '" + "w" * 40 + "...'"),
    ],
)
def test_a_bad_role_is_named_for_what_it_is(message: dict[str, Any], says: str) -> None:
    """A message without a role, with a role that is no string, or with an unknown one:
    the error says which (it said "unknown role 'NoneType'" for all of the first four),
    and never repeats more than 40 characters of what it was given."""
    with pytest.raises(InvalidMessageError) as got:
        canonicalize(message)
    assert str(got.value).startswith(says), str(got.value)
    assert len(str(got.value)) < 200


def test_a_list_holding_a_non_message_says_its_type() -> None:
    rt = srt.Runtime(":memory:")
    try:
        with pytest.raises(InvalidMessageError, match="holds a value of type int"):
            rt.session("s").append([1])
    finally:
        rt.close()
