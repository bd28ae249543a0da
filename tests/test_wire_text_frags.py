"""Plain text messages' fragments made from their canonical bytes (``_core.text_frags``,
``WireFormat.text_frags``, ``Assembly.extend_texts``) equal what ``render`` and
``Assembly.extend`` make, byte for byte and field for field, in every format that has
them; a session built that way sends the same bodies as one whose format renders each
message (the same format with ``text_frags`` turned off)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import srt
from srt import _core
from srt._pieces import Assembly
from srt.errors import SrtError, UnsupportedFeatureError
from srt.message import canonical_text, canonicalize, dumps
from srt.wire import FORMATS
from srt.wire.base import TEXT_ROLES, Frag, Target, TextFrags, WireFormat

TEXT_FORMATS = sorted(name for name, f in FORMATS.items() if f.text_frags() is not None)
MODELS = {"anthropic": "claude-sonnet-4-5", "bedrock": "anthropic.claude-sonnet-4-5"}
SPECIAL = ["", '"', "\\", "\x00", "\x1f", "\x7f", "\b\f\n\r\t", "\u2028", "é", "😀", "a\\u0041"]

texts = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(st.characters(codec="utf-8"), max_size=40),  # no lone surrogates
    st.lists(st.sampled_from([*SPECIAL, "abcdefghijklmnopq", "数据 ✓"]), max_size=12).map("".join),
)


def _undecided(ch: str) -> bool:
    """A character ``_core.text_frags`` does not take as one that is not whitespace: a
    space (``str.isspace``), a control character other than a backspace (escaped as
    ``\\u00xx``, or DEL), or one whose UTF-8 lead byte a space shares (0xC2, 0xE1-0xE3)."""
    o = ord(ch)
    return (
        ch.isspace()
        or (o < 0x20 and ch != "\b")
        or o == 0x7F
        or 0x80 <= o <= 0xBF
        or 0x1000 <= o <= 0x3FFF
    )


def _shows(text: str) -> bool:
    """Whether ``text_frags`` renders ``text`` for a format that refuses a blank text."""
    return not all(_undecided(ch) for ch in text)


def _target(fmt: WireFormat) -> Target:
    return Target(fmt.provider, MODELS.get(fmt.provider, "gpt-4.1-mini"))


def _texts(fmt: WireFormat) -> TextFrags:
    texts = fmt.text_frags()
    assert texts is not None
    return texts


def test_the_formats_that_render_per_message_have_text_frags() -> None:
    assert TEXT_FORMATS == [
        "anthropic.messages",
        "azure.responses",
        "bedrock.converse",
        "openai.responses",
    ]


@settings(max_examples=300, deadline=None)
@given(role=st.sampled_from(TEXT_ROLES), text=texts)
def test_a_plain_text_fragment_is_the_one_render_makes(role: str, text: str) -> None:
    body = canonical_text({"role": role, "content": text})
    assert body is not None
    for name in TEXT_FORMATS:
        fmt = FORMATS[name]
        t = _texts(fmt)
        codes, datas = _core.text_frags([body], t.wraps, t.empty)
        if datas[0] is None:  # an empty or blank text a format refuses, or one C cannot tell
            assert not _shows(text) and not t.empty and codes == b"\xff"
            if text.isspace() or not text:
                if role != "assistant":
                    with pytest.raises(UnsupportedFeatureError, match="an empty text block"):
                        fmt.render(body, _target(fmt))
            else:  # (render takes the others)
                c = TEXT_ROLES.index(role)
                want = Frag(t.kinds[c], t.roles[c], b"")
                got = fmt.render(body, _target(fmt))
                assert (got.kind, got.role) == (want.kind, want.role) and got.data
            continue
        c = codes[0]
        assert TEXT_ROLES[c] == role
        assert Frag(t.kinds[c], t.roles[c], datas[0]) == fmt.render(body, _target(fmt))


def test_an_empty_text_still_takes_render() -> None:
    for role in TEXT_ROLES:
        body = canonical_text({"role": role, "content": ""})
        assert body is not None
        for name in ("anthropic.messages", "bedrock.converse"):
            fmt = FORMATS[name]
            t = _texts(fmt)
            assert _core.text_frags([body], t.wraps, t.empty)[1] == [None]
            if role == "assistant":
                assert fmt.render(body, _target(fmt)).data == b""
            else:
                with pytest.raises(UnsupportedFeatureError, match="an empty text block"):
                    fmt.render(body, _target(fmt))


#: Escapes the encoder writes and ones it never does, valid and invalid UTF-8.
PIECES = (
    b'a abcdefghijklmnopqrstuvwxyz " \\ \\" \\\\ \\/ \\n \\b \\f \\r \\t \\u0001 \\u001f '
    b"\\u001F \\u0008 \\u000a \\u0041 \\u00e9 \\ud83d\\ude00 \\x \\u00 \xc3\xa9 \xe6\x95\xb0 "
    b"\xf0\x9f\x98\x80 \xed\xa0\x80 \xc0\xaf \xe0\x80\xaf \xf4\x90\x80\x80 \xf5 \x80 \xc3 \x7f \x00"
).split(b" ")
pieces = st.sampled_from([*PIECES, b" "])


def _canonical_json_text(inner: bytes) -> bool:
    """Whether ``"inner"`` is a JSON string that ``dumps`` writes back as it is."""
    quoted = b'"' + inner + b'"'
    try:
        value = json.loads(quoted.decode("utf-8"))
        return isinstance(value, str) and dumps(value) == quoted
    except ValueError:  # UnicodeError too
        return False


@settings(max_examples=500, deadline=None)
@given(inner=st.one_of(st.binary(max_size=40), st.lists(pieces, max_size=40).map(b"".join)))
def test_only_text_json_dumps_writes_takes_the_fast_path(inner: bytes) -> None:
    body = b'{"role":"user","content":"' + inner + b'"}'
    codes, _ = _core.text_frags([body], (None,) * 4, True)
    assert (codes == b"\x02") == _canonical_json_text(inner)


#: Sequences UTF-8 allows and ones it does not (overlong, surrogate, too large, cut off,
#: a stray continuation), each tried at every offset of the 16-byte blocks.
SEQUENCES = [
    b"\xc3\xa9",
    b"\xe6\x95\xb0",
    b"\xf0\x9f\x98\x80",
    b"\xf4\x8f\xbf\xbf",
    b"\xef\xbf\xbf",
    b"\xc0\xaf",
    b"\xc1\xbf",
    b"\xe0\x80\xaf",
    b"\xe0\x9f\xbf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf0\x8f\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80",
    b"\xff",
    b"\x80",
    b"\xbf",
    b"\xc3",
    b"\xe6\x95",
    b"\xf0\x9f\x98",
    b"\xc3\xa9\xa9",
    b"\xe6\x95\xb0\x80",
]


@pytest.mark.parametrize("mode", [{}, {"avx2": False}, {"vector": False}])
def test_the_utf8_check_is_decode_s(mode: dict[str, bool]) -> None:
    for seq in SEQUENCES:
        for at in range(34):
            for after in (b"", b"z", b"z" * 17, seq):
                data = b"a" * at + seq + after
                try:
                    data.decode("utf-8")
                    want = True
                except UnicodeDecodeError:
                    want = False
                assert _core.utf8_valid(data, **mode) is want, (data, mode)


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.sampled_from([*SEQUENCES, b"a", b"abcdefghijklmno"]), max_size=30))
def test_the_utf8_check_is_decode_s_on_mixed_text(data: list[bytes]) -> None:
    joined = b"".join(data)
    try:
        joined.decode("utf-8")
        want = True
    except UnicodeDecodeError:
        want = False
    assert _core.utf8_valid(joined) is want
    assert _core.utf8_valid(joined, avx2=False) is want
    assert _core.utf8_valid(joined, vector=False) is want


def test_bodies_that_are_not_one_plain_text_take_render() -> None:
    bodies = [
        b'{"role":"user","content":"a","name":"b"}',
        b'{"role":"user","content":"a"} ',
        b'{"role":"tool","content":"a"}',
        b'{"role":"user","content":["a"]}',
        b'{"role":"user","content":"a\\"}',
        b'{"role":"users","content":"a"}',
        b'{"role":"user","content":"a\\u0041"}',
    ]
    assert _core.text_frags(bodies, (None,) * 4, True) == (b"\xff" * 7, [None] * 7)


# -- whole chains ---------------------------------------------------------------------

plain = st.builds(lambda r, t: {"role": r, "content": t}, st.sampled_from(TEXT_ROLES), texts)
other = st.sampled_from(
    [
        {"role": "user", "content": [{"type": "text", "text": "parts"}]},
        {"role": "user", "content": "named", "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "result"},
        {
            "role": "assistant",
            "content": "thought",
            "artifacts": [
                {"provider": "anthropic", "model": "m", "type": "thinking", "data": {"a": 1}}
            ],
        },
    ]
)
chains = st.lists(st.one_of(plain, plain, plain, other), min_size=1, max_size=14)


def _body(msg: dict[str, Any]) -> bytes:
    return canonical_text(msg) or canonicalize(msg)[0]


def _state(asm: Assembly) -> tuple[Any, ...]:
    return (
        asm.n,
        list(asm.pieces),
        list(asm.system),
        list(asm.nbytes),
        list(asm.blocks),
        list(asm.ntokens),
        [asm.message_piece(i) for i in range(asm.n)],
        asm.system_count,
        asm.last_role(),
        asm.notes(),
    )


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except SrtError as exc:
        return type(exc).__name__, str(exc)


def _fast(fmt: WireFormat, first: list[Frag], bodies: list[bytes]) -> Assembly:
    asm = Assembly()
    asm.extend(fmt, first)
    t = _texts(fmt)
    codes, datas = _core.text_frags(bodies, t.wraps, t.empty)
    made = [d for d in datas if d is not None]
    assert len(made) == len(bodies)
    asm.extend_texts(fmt, t, codes, made)
    return asm


def _slow(fmt: WireFormat, first: list[Frag], bodies: list[bytes]) -> Assembly:
    asm = Assembly()
    asm.extend(fmt, first)
    asm.extend(fmt, [fmt.render(b, _target(fmt)) for b in bodies])
    return asm


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(plain.filter(lambda m: _shows(m["content"])), max_size=3),
    chain=st.lists(plain.filter(lambda m: _shows(m["content"])), min_size=1, max_size=12),
    cut=st.integers(0, 15),
)
def test_extend_texts_makes_the_records_extend_makes(
    before: list[dict[str, Any]], chain: list[dict[str, Any]], cut: int
) -> None:
    """System messages leading or not, after an assembly's earlier messages or not,
    then truncated: the same pieces, columns and roles."""
    for name in TEXT_FORMATS:
        fmt = FORMATS[name]
        first = [fmt.render(_body(m), _target(fmt)) for m in before]
        bodies = [_body(m) for m in chain]
        got = _outcome(partial(_fast, fmt, first, bodies))
        want = _outcome(partial(_slow, fmt, first, bodies))
        assert got[0] == want[0]
        if got[0] != "ok":
            assert got == want
            continue
        assert _state(got[1]) == _state(want[1])
        k = min(cut, got[1].n)
        got[1].truncate(k)
        want[1].truncate(k)
        assert _state(got[1]) == _state(want[1])


class _Rendering:
    """The same format with ``text_frags`` off: every message through ``render``."""

    def text_frags(self) -> TextFrags | None:
        return None


def _slow_twin(name: str) -> WireFormat:
    fmt = FORMATS[name]
    twin = type("Slow" + type(fmt).__name__, (_Rendering, type(fmt)), {"name": "slow." + name})
    made: WireFormat = twin()
    return made


def _request(s: srt.Session, name: str, model: str, **kw: Any) -> tuple[str, Any]:
    def build() -> tuple[bytes, Any]:
        body = s.request(name, model=model, **kw)
        st = s.last_build
        assert st is not None
        return body, (st.messages, st.serialized, st.reused, st.nbytes, st.notes, st.breakpoints)

    kind, got = _outcome(build)
    # An error names the format: the twin's is "slow." and the format's name.
    return kind, got.replace("slow.", "") if kind != "ok" else got


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain=chains)
def test_a_cold_session_sends_what_rendering_each_message_sends(
    tmp_path_factory: pytest.TempPathFactory, chain: list[dict[str, Any]]
) -> None:
    """A session loaded cold builds, in every format, the body (with and without cache
    marks) and the build figures that rendering each message gives, and the same error
    where that refuses the chain; so does the body built message by message."""
    path = str(tmp_path_factory.mktemp("texts") / "t.db")
    rt = srt.Runtime(path)
    s = rt.session("t")
    for name in TEXT_FORMATS:
        FORMATS["slow." + name] = _slow_twin(name)
    try:
        steps: dict[str, list[tuple[str, Any]]] = {n: [] for n in TEXT_FORMATS}
        for msg in chain:
            s.append(msg)
            for name in TEXT_FORMATS:  # built message by message
                model = MODELS.get(FORMATS[name].provider, "gpt-4.1-mini")
                steps[name].append(_request(s, name, model, cache=False))
        rt.close()
        for name in TEXT_FORMATS:
            model = MODELS.get(FORMATS[name].provider, "gpt-4.1-mini")
            for kw in ({}, {"cache": False}):
                outs = []
                for fmt_name in (name, "slow." + name):
                    cold = srt.Runtime(path)  # a new runtime: nothing cached
                    outs.append(_request(cold.session("t"), fmt_name, model, **kw))
                    cold.close()
                assert outs[0] == outs[1], (name, kw)
            if outs[0][0] == "ok":
                assert steps[name][-1][0] == "ok"
                assert steps[name][-1][1][0] == outs[0][1][0]
    finally:
        for name in TEXT_FORMATS:
            FORMATS.pop("slow." + name, None)


def test_a_long_chat_cold_and_message_by_message(tmp_path: Path) -> None:
    """The bench's chat workload (system prompt, 40 turns, Unicode): one body whether
    built cold, message by message, or by rendering each message (without cache marks:
    where a session places them depends on the requests it made before)."""
    from srt.bench import workloads

    path = str(tmp_path / "chat.db")
    rt = srt.Runtime(path)
    s = rt.session("c")
    system, pairs = workloads.chat(40, seed=3)
    s.append(system)
    last: dict[str, bytes] = {}
    for user, reply in pairs:
        s.append(user, reply)
        for name in TEXT_FORMATS:
            model = MODELS.get(FORMATS[name].provider, "gpt-4.1")
            last[name] = s.request(name, model=model, cache=False)
    rt.close()
    for name in TEXT_FORMATS:
        FORMATS["slow." + name] = _slow_twin(name)
    try:
        for name in TEXT_FORMATS:
            model = MODELS.get(FORMATS[name].provider, "gpt-4.1")
            for cache in (True, False):
                bodies = []
                for fmt_name in (name, "slow." + name):
                    cold = srt.Runtime(path)
                    bodies.append(cold.session("c").request(fmt_name, model=model, cache=cache))
                    cold.close()
                assert bodies[0] == bodies[1]
                assert isinstance(json.loads(bodies[0]), dict)  # valid JSON
            assert bodies[0] == last[name]
    finally:
        for name in TEXT_FORMATS:
            FORMATS.pop("slow." + name, None)
