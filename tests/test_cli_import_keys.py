"""``srt import --extra-keys``: a log whose messages carry keys of their own (``id``,
``created_at``, ``model``, ``usage``...), refused by default with the option named,
moved into each message's metadata, or dropped (``srt.cli._import_keys``).

The CLI runs in this process (``srt.cli.main``) on a real SQLite file (and, for the
mid-file refusal, a real PostgreSQL schema too), batches made small so that a refusal
at line 500 comes after several have been appended to the scratch session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.cli import _import_doc, _import_file
from srt.errors import InvalidMessageError
from srt.message import ASSISTANT_KEYS, ROLES, canonicalize, split_extra
from support import InProcessCli as Cli

#: A log line as another tool writes it: the message with keys of its own around it.
LOG = [
    {"id": "m1", "created_at": 1733560000, "role": "system", "content": "Be brief."},
    {"role": "user", "content": "Where is my order?", "id": "m2", "timestamp": "2026-12-07"},
    {
        "role": "assistant",
        "content": "It ships today.",
        "id": "m3",
        "model": "gpt-4o-mini",
        "usage": {"prompt_tokens": 12, "completion_tokens": 4},
        "refusal": None,
        "reasoning_content": "Look it up.",
        "metadata": {"ticket": 7},
    },
]
#: What is sent of them: the message keys only.
SENT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Where is my order?"},
    {"role": "assistant", "content": "It ships today.", "reasoning_content": "Look it up."},
]
#: Their metadata under ``--extra-keys metadata``.
MOVED = [
    {"id": "m1", "created_at": 1733560000},
    {"id": "m2", "timestamp": "2026-12-07"},
    {
        "ticket": 7,
        "id": "m3",
        "model": "gpt-4o-mini",
        "usage": {"prompt_tokens": 12, "completion_tokens": 4},
    },
]


def _cli(db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    for var in ("SRT_DB", "SRT_PROVIDER", "SRT_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return Cli(db, capsys, monkeypatch)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return _cli(str(tmp_path / "srt.db"), capsys, monkeypatch)


def _jsonl(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(m).encode() + b"\n" for m in messages)


def _read(db: str, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any] | None]]:
    """A session's messages as sent, and each one's metadata."""
    with srt.Runtime(db) as rt:
        session = rt.session(name, create=False)
        sent = session.messages()
        meta = [m.get("metadata") for m in session.messages(metadata=True)]
    return sent, meta


def _file(tmp_path: Path, data: bytes, name: str = "log.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_by_default_the_first_extra_key_is_refused_naming_the_line_and_the_option(
    cli: Cli, tmp_path: Path
) -> None:
    code, out, err = cli("import", _file(tmp_path, _jsonl(LOG)))
    assert (code, out) == (1, "")
    assert err.startswith("srt: error: line 1: a system message cannot carry 'created_at'"), err
    assert "put your own data in the message's 'metadata' dict" in err
    assert err.endswith(
        "; or import with --extra-keys metadata (moves such keys into each message's "
        "metadata) or --extra-keys drop (leaves them out)\n"
    ), err
    assert not Path(cli.db).exists()  # (a bad small file creates nothing, not the file)
    assert cli("import", _file(tmp_path, _jsonl(LOG)), "--extra-keys", "refuse")[2] == err


def test_metadata_moves_them_into_each_message_s_metadata(cli: Cli, tmp_path: Path) -> None:
    path = _file(tmp_path, _jsonl(LOG))
    assert cli("import", path, "--extra-keys", "metadata") == (0, "log: 3 messages\n", "")
    assert _read(cli.db, "log") == (SENT, MOVED)
    # What is sent is what the bare messages give, byte for byte.
    assert cli("import", "-", "--name", "bare", stdin=_jsonl(SENT))[0] == 0
    assert cli.stored("log") == cli.stored("bare")


def test_drop_leaves_them_out(cli: Cli, tmp_path: Path) -> None:
    path = _file(tmp_path, _jsonl(LOG))
    assert cli("import", path, "--extra-keys", "drop") == (0, "log: 3 messages\n", "")
    assert _read(cli.db, "log") == (SENT, [None, None, {"ticket": 7}])


def test_stdin_takes_the_option_too(cli: Cli) -> None:
    got = cli("import", "-", "--extra-keys", "metadata", stdin=_jsonl(LOG))
    assert got == (0, "imported: 3 messages\n", "")
    assert _read(cli.db, "imported") == (SENT, MOVED)


def test_an_assistant_key_on_another_role_is_extra_and_moved(cli: Cli, tmp_path: Path) -> None:
    # Which keys are extra is the append's rule: ``refusal`` is an assistant's own key.
    line = {"role": "user", "content": "hi", "refusal": "no"}
    path = _file(tmp_path, _jsonl([line]))
    code, _out, err = cli("import", path)
    assert code == 1 and "a user message cannot carry 'refusal'" in err, err
    assert cli("import", path, "--extra-keys", "metadata")[0] == 0
    assert _read(cli.db, "log") == ([{"role": "user", "content": "hi"}], [{"refusal": "no"}])


def test_a_key_also_in_its_metadata_is_an_error_naming_the_line_and_key(
    cli: Cli, tmp_path: Path
) -> None:
    lines = [*LOG[:2], {"role": "user", "content": "hi", "id": "m4", "metadata": {"id": 3}}]
    path = _file(tmp_path, _jsonl(lines))
    code, out, err = cli("import", path, "--extra-keys", "metadata")
    assert (code, out) == (1, "")
    assert err == (
        "srt: error: line 3: the message carries 'id' both as a key of its own and in its "
        "metadata: --extra-keys metadata does not overwrite one with the other; rename one "
        "of them, or import with --extra-keys drop to leave the top-level one out\n"
    )
    assert not Path(cli.db).exists()
    assert cli("import", path, "--extra-keys", "drop")[0] == 0
    assert _read(cli.db, "log")[1] == [None, None, {"id": 3}]


def test_srt_s_reserved_prefix_stays_refused(cli: Cli, tmp_path: Path) -> None:
    path = _file(tmp_path, _jsonl([{"role": "user", "content": "hi", "srt_tool": "x"}]))
    code, _out, err = cli("import", path, "--extra-keys", "metadata")
    assert code == 1
    assert err.startswith("srt: error: line 1: the message carries 'srt_tool', which "), err
    assert "keys starting with 'srt_' are srt's own" in err
    assert not Path(cli.db).exists()
    given = {"role": "user", "content": "hi", "metadata": {"srt_tool": "x"}}
    code, _out, err = cli("import", _file(tmp_path, _jsonl([given])), "--extra-keys", "drop")
    assert code == 1 and "metadata key 'srt_tool' is reserved" in err, err


def test_metadata_that_is_not_a_dict_cannot_take_them(cli: Cli, tmp_path: Path) -> None:
    path = _file(tmp_path, _jsonl([{"role": "user", "content": "hi", "id": 1, "metadata": [1]}]))
    code, _out, err = cli("import", path, "--extra-keys", "metadata")
    assert code == 1
    assert err == (
        "srt: error: line 1: metadata must be a dict to take the message's other keys "
        "(--extra-keys metadata), got list\n"
    )


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
@pytest.mark.parametrize(
    ("mode", "bad", "says"),
    [
        (None, {"id": "x"}, "a user message cannot carry 'id'"),
        ("metadata", {"id": "x", "metadata": {"id": "y"}}, "carries 'id' both as a key"),
        ("metadata", {"srt_x": 1}, "carries 'srt_x', which --extra-keys metadata"),
    ],
)
def test_a_refusal_at_line_500_of_1000_leaves_no_session(
    store: str,
    mode: str | None,
    bad: dict[str, Any],
    says: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if store == "sqlite":
        cli = _cli(str(tmp_path / "srt.db"), capsys, monkeypatch)
        _run(cli, tmp_path, monkeypatch, mode, bad, says)
        return
    from pg_support import fresh_url

    with fresh_url() as url:
        _run(_cli(url, capsys, monkeypatch), tmp_path, monkeypatch, mode, bad, says)


def _run(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str | None,
    bad: dict[str, Any],
    says: str,
) -> None:
    monkeypatch.setattr(_import_file, "BATCH_BYTES", 4096)
    assert cli("append", "a", "--role", "user", "hello")[0] == 0
    lines = [{"role": "user", "content": f"message {i}"} for i in range(1, 1001)]
    if mode is not None:  # (keys the option takes care of on every other line)
        lines = [{**line, "id": f"m{i}"} for i, line in enumerate(lines, 1)]
    lines[499] = {**lines[499], **bad}
    data = _jsonl(lines)
    assert len(b"".join(data.split(b"\n")[:499])) > 5 * 4096  # (batches appended before it)
    path = _file(tmp_path, data)
    code, out, err = cli("import", path, *(["--extra-keys", mode] if mode else []))
    assert (code, out) == (1, "")
    assert err.startswith("srt: error: line 500: ") and says in err, err
    assert cli.names() == ["a"]  # neither the name nor the scratch session
    if mode == "metadata":  # the other lines were fine: with the bad key dropped, all in
        assert cli("import", path, "--extra-keys", "drop") == (0, "log: 1000 messages\n", "")


def test_a_chat_body_read_whole_takes_the_option(cli: Cli, tmp_path: Path) -> None:
    body = json.dumps({"model": "gpt-4o-mini", "messages": LOG}, indent=1).encode()
    path = _file(tmp_path, body, "body.json")
    code, _out, err = cli("import", path, "--format", "openai.chat")
    assert code == 1
    assert err.startswith("srt: error: message 1: a system message cannot carry"), err
    assert err.endswith("or --extra-keys drop (leaves them out)\n"), err
    assert cli("import", path, "--extra-keys", "metadata")[0] == 0
    assert _read(cli.db, "body") == (SENT, MOVED)


def test_a_streamed_document_takes_the_option_and_names_the_message(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_import_file, "WHOLE_BYTES", 0)
    monkeypatch.setattr(_import_file, "BATCH_BYTES", 512)
    monkeypatch.setattr(_import_doc, "CHUNK", 256)
    many = [{**m, "content": f"{m['content']} {i}"} for i in range(20) for m in LOG]
    path = _file(tmp_path, json.dumps(many).encode(), "big.json")
    assert cli("import", path, "--extra-keys", "metadata") == (0, "big: 60 messages\n", "")
    sent, meta = _read(cli.db, "big")
    assert meta == MOVED * 20
    assert sent == [{**m, "content": f"{m['content']} {i}"} for i in range(20) for m in SENT]
    many[41]["metadata"] = {"model": "x"}  # (an assistant message: the 42nd)
    path = _file(tmp_path, json.dumps(many).encode(), "big.json")
    code, _out, err = cli("import", path, "--name", "clash", "--extra-keys", "metadata")
    assert code == 1
    assert err.startswith("srt: error: message 42: the message carries 'model' both "), err
    assert cli.names() == ["big"]


def test_responses_and_anthropic_shapes_keep_only_what_they_convert(
    cli: Cli, tmp_path: Path
) -> None:
    # Their converters build each message afresh: an item's own id or status never
    # reaches the append, so the default takes them.
    body = {
        "input": [
            {"type": "message", "role": "user", "id": "i1", "status": "completed",
             "content": [{"type": "input_text", "text": "hi"}]},
        ]
    }  # fmt: skip
    assert cli("import", _file(tmp_path, json.dumps(body).encode(), "r.json"))[0] == 0
    assert _read(cli.db, "r")[0] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    body = {
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "id": "msg_1", "model": "claude", "stop_reason": "end_turn",
             "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        ],
    }  # fmt: skip
    assert cli("import", _file(tmp_path, json.dumps(body).encode(), "m.json"))[0] == 0
    assert "id" not in _read(cli.db, "m")[0][2]


def test_from_refuses_the_option(cli: Cli, tmp_path: Path) -> None:
    code, _out, err = cli(
        "import", "--from", "llm-logs", _file(tmp_path, b"", "logs.db"), "--extra-keys", "drop"
    )
    assert code == 1
    assert err == (
        "srt: error: --name, --format and --extra-keys are for files made by srt export, "
        "not --from\n"
    )


def test_export_then_import_of_a_session_with_metadata_round_trips(
    cli: Cli, tmp_path: Path
) -> None:
    with srt.Runtime(cli.db) as rt:
        s = rt.session("s")
        s.append({"role": "user", "content": "hi", "metadata": {"id": "m1", "at": 5}})
        s.append({"role": "assistant", "content": "yo", "refusal": "no", "metadata": {"n": 1}})
        with_meta = s.messages(metadata=True)
    code, exported, _err = cli("export", "s")
    assert code == 0
    for mode in ("refuse", "metadata", "drop"):  # (an export carries no extra key)
        got = cli(
            "import", "-", "--name", f"e-{mode}", "--extra-keys", mode, stdin=exported.encode()
        )
        assert got == (0, f"e-{mode}: 2 messages\n", "")
        assert cli.stored(f"e-{mode}")[0] == cli.stored("s")[0]
    # The messages read back with their metadata, one a line, import with it.
    for mode in ("refuse", "metadata", "drop"):
        got = cli(
            "import", "-", "--name", f"m-{mode}", "--extra-keys", mode, stdin=_jsonl(with_meta)
        )
        assert got[0] == 0, got
        with srt.Runtime(cli.db) as rt:
            assert rt.session(f"m-{mode}", create=False).messages(metadata=True) == with_meta


def test_split_extra_is_what_canonicalize_refuses() -> None:
    keys = ["role", "content", "name", "metadata", "id", "created_at", "usage", "type",
            *sorted(ASSISTANT_KEYS)]  # fmt: skip
    for role in sorted(ROLES):
        base = {"role": role, "content": "x", **({"tool_call_id": "c"} if role == "tool" else {})}
        canonicalize(base)
        for key in keys[4:]:
            message = {**base, key: "v"}
            known, extra = split_extra(message)
            assert {**known, **extra} == message
            try:
                canonicalize(message)
            except InvalidMessageError as exc:
                assert extra == {key: "v"} and known == base, exc
            else:
                assert extra == {}, (role, key)
    assert split_extra({"role": "user", "content": "x", "id": None}) == (
        {"role": "user", "content": "x"},
        {},
    )
    assert split_extra({"role": "wizard", "id": 1}) == ({"role": "wizard", "id": 1}, {})
