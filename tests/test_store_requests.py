"""The content-addressed store's request bytes: equal to ``json.dumps`` of the history,
each request extending the previous one byte for byte (also after reopening), bad
parameters refused, nothing already stored serialized again."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
from store_support import assistant, user


def compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.fixture
def rt(store_rt: srt.Runtime) -> srt.Runtime:
    """The session tests of this module run once per engine (SQLite, PostgreSQL)."""
    return store_rt


# -- request bytes ----------------------------------------------------------------------------

_texts = st.text() | st.lists(
    st.sampled_from(["\x00", "𝄞", "😀", "é", "a", '"', "\\", "\n", "\u2028", "\ufeff"])
).map("".join)
_conversations = st.lists(
    st.tuples(st.sampled_from(["system", "user", "assistant"]), _texts),
    min_size=0,
    max_size=8,
)
_params = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2, allow_nan=False, allow_infinity=False),
        "max_tokens": st.integers(1, 2**31),
        "stream": st.booleans(),
        "top_p": st.floats(0, 1),
        "stop": st.lists(st.text(max_size=5), max_size=3),
        "user": st.text(max_size=20),
        "response_format": st.just({"type": "json_object"}),
        "seed": st.none() | st.integers(-(2**63), 2**63 - 1),
    },
)
_models = st.sampled_from(["gpt-4o-mini", "o3", "model/with\u00e9\x00"]) | st.text(min_size=1)


@pytest.fixture(scope="module")
def module_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[srt.Runtime]:
    with srt.Runtime(str(tmp_path_factory.mktemp("req") / "req.db")) as runtime:
        yield runtime


_names = (f"conv-{i}" for i in itertools.count())


@settings(max_examples=200)
@given(_conversations, _models, _params)
def test_request_bytes_equal_json_dumps(
    module_rt: srt.Runtime, convo: list[tuple[str, str]], model: str, params: dict[str, Any]
) -> None:
    s = module_rt.session(next(_names))
    msgs = [{"role": r, "content": t} for r, t in convo]
    if msgs:
        s.append(*msgs)
    # cache=False: no cache hints (OpenAI's prompt_cache_key) are added to params.
    body = s.request(model=model, cache=False, **params)
    assert s.messages() == msgs
    assert body == compact({"model": model, "messages": s.messages(), **params})
    assert json.loads(body) == {"model": model, "messages": msgs, **params}
    assert s.last_build is not None
    assert s.last_build.nbytes == len(body)
    assert s.last_build.messages == len(msgs)
    assert s.last_build.serialized == 0
    assert s.last_build.format == "openai.chat"


def _messages_end(model: str, messages: list[dict[str, Any]]) -> int:
    """Offset just past the last message fragment of a Chat Completions body."""
    head = b'{"model":' + compact(model) + b',"messages":['
    return len(head) + len(b",".join(compact(m) for m in messages))


@settings(max_examples=100)
@given(
    st.lists(_conversations, min_size=1, max_size=6),
    _models,
    _params,
    st.booleans(),
)
def test_each_request_extends_the_previous_one_byte_for_byte(
    module_rt: srt.Runtime,
    turns: list[list[tuple[str, str]]],
    model: str,
    params: dict[str, Any],
    cache: bool,
) -> None:
    """Turn N+1's body starts with turn N's body minus its closing tail.

    The tail (``]`` and the parameters) is everything after turn N's last message
    fragment; it is found from ``json.dumps`` of the messages, not from srt.
    """
    s = module_rt.session(next(_names))
    previous: bytes | None = None
    previous_end = 0
    for turn in turns:
        added = [{"role": r, "content": t} for r, t in turn]
        s.append(*added)
        body = s.request(model=model, cache=cache, **params)
        end = _messages_end(model, s.messages())
        assert body[end : end + 1] == b"]"
        assert json.loads(body)["messages"] == s.messages()
        if previous is not None:
            kept = previous[:previous_end]
            assert body.startswith(kept)
            if added and len(s) > len(added):
                assert body[len(kept) : len(kept) + 1] == b","
            if not added:
                assert body == previous
        previous, previous_end = body, end
    if not cache:
        assert previous == compact({"model": model, "messages": s.messages(), **params})


def test_request_prefix_survives_reopen(rt: srt.Runtime) -> None:
    s = rt.session("s")
    previous: bytes | None = None
    for t in range(30):
        s.append(user(f"question {t} 𝄞"), assistant(f"answer {t}\x00"))
        body = s.request(model="m", temperature=0.2)
        if previous is not None:
            end = _messages_end("m", s.messages()[:-2])
            assert body.startswith(previous[:end] + b",")
        previous = body
    with srt.Runtime(rt.path) as other:
        assert other.session("s").request(model="m", temperature=0.2) == previous


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("", {}),
        (None, {}),
        ("m", {"messages": []}),
        ("\ud800", {}),
        ("m", {"user": "\ud800"}),
        ("m", {"temperature": float("nan")}),
        ("m", {"stop": {1, 2}}),
    ],
)
def test_bad_request_parameters(rt: srt.Runtime, model: Any, params: dict[str, Any]) -> None:
    s = rt.session("s")
    s.append(user("x"))
    with pytest.raises(srt.ConfigError):
        s.request(model=model, **params)


def test_unknown_wire_format(rt: srt.Runtime) -> None:
    with pytest.raises(srt.ConfigError):
        rt.session("s").request("nope.chat", model="m")


def test_request_serializes_nothing_already_stored(rt: srt.Runtime) -> None:
    s = rt.session("s")
    msgs = [user(f"u{i}") if i % 2 else assistant(f"a{i}") for i in range(200)]
    s.append(*msgs[:100])
    s.append(*msgs[100:])
    assert rt.serialized == 200
    first = s.request(model="m")
    assert s.last_build is not None
    assert s.last_build.serialized == 0
    assert s.last_build.reused == 200
    assert rt.serialized == 200

    before = rt.serialized
    s.append(user("new question"), assistant("new answer"))
    body = s.request(model="m")
    assert rt.serialized - before == 2
    assert s.last_build.serialized == 0
    assert s.last_build.messages == 202
    assert body.startswith(first[: _messages_end("m", msgs)] + b",")

    with srt.Runtime(rt.path) as fresh:
        again = fresh.session("s").request(model="m")
        assert fresh.serialized == 0
        assert again == body
