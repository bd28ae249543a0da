"""``srt import`` of one JSON document, streamed (``srt.cli._import_doc``): every shape
gives the stored session the whole-document read gives (``json.loads`` of it all),
with the reads made tiny so items, strings and UTF-8 sequences are split across them
and the batches many; bad documents are refused with the same kind of error, and
nothing is created; memory holds a batch, not the document.

In-process runs go through ``srt.cli.main`` on a real SQLite file and a real
PostgreSQL schema (``store_url``).
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.cli import _import_file
from support import InProcessCli as Cli


@pytest.fixture
def cli(store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    for var in ("SRT_DB", "SRT_PROVIDER", "SRT_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    c = Cli(store_url, capsys, monkeypatch)
    assert c("append", "a", "--role", "user", "Where is my order?")[0] == 0
    return c


# -- documents ---------------------------------------------------------------------------


def _chat(turns: int) -> list[dict[str, Any]]:
    """A conversation with tool calls and text of 1 to 4 UTF-8 bytes a character."""
    out: list[dict[str, Any]] = [{"role": "system", "content": "Be brief. ß ✓ 😀"}]
    for i in range(turns):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        out += [
            {"role": "user", "content": f'question {i}: où est 東京? 😀 \\ " \n'},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": f"result {i} ✓"},
            {"role": "assistant", "content": f"answer {i}: 𝄞 " + "x" * (i % 7)},
        ]
    return out


def _responses_items(turns: int) -> list[dict[str, Any]]:
    """Responses input where an assistant turn spans reasoning, message and calls."""
    items: list[dict[str, Any]] = []
    for i in range(turns):
        calls = [
            {"type": "function_call", "call_id": f"c{i}{k}", "name": "f", "arguments": "{}"}
            for k in range(2)
        ]
        items += [
            {"role": "user", "content": [{"type": "input_text", "text": f"q{i} é😀"}]},
            {"type": "reasoning", "id": f"rs_{i}", "summary": [], "model": "o3"},
            {"type": "reasoning", "id": f"rs_{i}b", "summary": [], "model": "o3"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": f"looking {i} ✓"}],
            },
            *calls,
            *(
                {"type": "function_call_output", "call_id": c["call_id"], "output": "ok"}
                for c in calls
            ),
            {"role": "assistant", "content": f"done {i} 𝄞"},
        ]
    return items


def _bodies(tmp: Path) -> dict[str, bytes]:
    """Every one-document shape srt import reads, as bytes."""
    messages = _chat(40)
    with srt.Runtime(str(tmp / "src.db")) as rt:
        session = rt.session("src")
        session.append(*messages)
        wire = {f: session.request(f, model="m", cache=False) for f in _WIRE}
    dumps = json.dumps
    anthropic = json.loads(wire["anthropic.messages"])
    late_system = {k: v for k, v in anthropic.items() if k != "system"}
    late_system["system"] = anthropic["system"]  # after the messages
    chat = json.loads(wire["openai.chat"])
    duplicated = dumps(chat)[:-1] + ', "messages": ' + dumps(messages[:30]) + "}"
    pretty = {f"{f} pretty": dumps(json.loads(b), indent=2).encode() for f, b in wire.items()}
    return {
        **wire,
        **pretty,
        "list": dumps(messages, ensure_ascii=False, indent=1).encode(),
        "list one line": dumps(messages, ensure_ascii=False).encode() + b"\n\n",
        "list with a bom": b"\xef\xbb\xbf" + dumps(messages).encode(),
        "responses list": dumps(_responses_items(25), ensure_ascii=False, indent=1).encode(),
        "responses body": dumps(
            {"model": "o3", "instructions": "Be brief ✓", "input": _responses_items(25)},
            ensure_ascii=False,
        ).encode(),
        "responses string input": dumps({"input": "hi ✓", "instructions": "x" * 500}).encode(),
        "system after messages": dumps(late_system, ensure_ascii=False).encode(),
        "duplicated messages": (dumps({"messages": [1, 2]})[:-1] + ", " + duplicated[1:]).encode(),
    }


_WIRE = ("openai.chat", "openai.responses", "anthropic.messages", "bedrock.converse")


def _streamed(monkeypatch: pytest.MonkeyPatch, chunk: int = 7, batch: int = 300) -> list[int]:
    """Make ``srt import`` stream every document, read ``chunk`` bytes at a time in
    batches of about ``batch`` bytes; the list gets each batch's size."""
    from srt.cli import _import_doc  # (here: the memory test runs on an srt without it)

    monkeypatch.setattr(_import_file, "WHOLE_BYTES", 0)
    monkeypatch.setattr(_import_file, "BATCH_BYTES", batch)
    monkeypatch.setattr(_import_doc, "CHUNK", chunk)
    sizes: list[int] = []
    real = _import_doc.batches

    def counted(*args: Any) -> Iterator[list[dict[str, Any]]]:
        for b in real(*args):
            sizes.append(len(b))
            yield b

    monkeypatch.setattr(_import_doc, "batches", counted)
    return sizes


# -- the same sessions ---------------------------------------------------------------------


def test_every_shape_streamed_stores_what_the_whole_read_stores(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = _bodies(tmp_path)
    for n, (shape, body) in enumerate(bodies.items()):
        path = tmp_path / f"d{n}.json"
        path.write_bytes(body)
        code, out, err = cli("import", str(path), "--name", f"whole{n}")
        assert (code, err) == (0, ""), (shape, err)
    with monkeypatch.context() as m:
        sizes = _streamed(m)
        for n, (shape, body) in enumerate(bodies.items()):
            sizes.clear()
            path = tmp_path / f"d{n}.json"
            code, out, err = cli("import", str(path), "--name", f"streamed{n}")
            assert (code, err) == (0, ""), (shape, err)
            whole = cli.stored(f"whole{n}")
            assert cli.stored(f"streamed{n}") == whole, shape
            assert out == f"streamed{n}: {len(whole[0])} messages\n"
            if shape != "responses string input":  # (its one item is a string)
                assert len(sizes) > 3, (shape, sizes)  # (many batches, so cut many times)
            # ... and from stdin (a pipe: copied to a temporary file, read twice).
            code, out, err = cli("import", "-", "--name", f"stdin{n}", stdin=body)
            assert (code, err) == (0, ""), (shape, err)
            assert cli.stored(f"stdin{n}") == whole, shape


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_any_read_size_splits_the_text_anywhere_and_gives_the_same(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    body = json.dumps({"input": _responses_items(4)}, ensure_ascii=False).encode()
    path = tmp_path / "r.json"
    path.write_bytes(body)
    assert cli("import", str(path), "--name", "whole")[0] == 0
    _streamed(monkeypatch, chunk=chunk, batch=1)
    assert cli("import", str(path), "--name", "streamed")[0] == 0
    assert cli.stored("streamed") == cli.stored("whole")


def test_a_long_first_line_followed_by_json_lines_is_json_lines(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = _chat(10)
    lines = json.dumps(messages).encode() + b"\n"
    lines += b"".join(json.dumps(m).encode() + b"\n" for m in messages[1:4])
    path = tmp_path / "l.jsonl"
    path.write_bytes(lines)
    assert cli("import", str(path), "--name", "whole")[:2] == (0, "whole: 44 messages\n")
    _streamed(monkeypatch)  # (the first line is longer than a batch: not read at once)
    assert cli("import", str(path), "--name", "streamed")[0] == 0
    assert cli.stored("streamed") == cli.stored("whole")


# -- the same errors ---------------------------------------------------------------------


def _both(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes
) -> tuple[str, str]:
    """The errors of importing ``data`` read whole, then streamed (neither creates any
    session)."""
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    errors = []
    for streamed in (False, True):
        with monkeypatch.context() as m:
            if streamed:
                _streamed(m)
            code, out, err = cli("import", str(path))
        assert (code, out) == (1, ""), err
        assert err.startswith("srt: error: ") and err.count("\n") == 1, err
        errors.append(err)
    assert cli.names() == ["a"]
    return errors[0], errors[1]


def test_a_truncated_document_is_refused_anywhere_it_is_cut(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps({"model": "m", "messages": _chat(3)}, ensure_ascii=False, indent=1)
    data = body.encode()
    for cut in [*range(1, 40), *range(40, len(data) - 1, 23)]:
        whole, streamed = _both(cli, tmp_path, monkeypatch, data[:cut])
        if "not UTF-8" in whole:  # (cut inside a character: the same byte is named)
            assert streamed == whole, cut
        else:
            said = "srt: error: the file is neither JSON nor JSON lines: "
            assert whole.startswith(said) and streamed.startswith(said), (cut, streamed)
            assert "(byte " in streamed, streamed


NOT_JSON = "the file is neither JSON nor JSON lines: "
_X = b'{"role":"user","content":"x"},'


@pytest.mark.parametrize(
    ("data", "says", "where"),
    [
        (b"[" + _X * 30 + b"7]", "a list of messages or items holds a value of type", "item 30"),
        (b'{"messages": [' + _X * 30 + b"7]}", "", ""),
        (b'{"messages": [' + _X + b'\n{"role"::1}]}', NOT_JSON, "byte 53, item 1 of 'messages'"),
        (b"[" + _X + b"{}] {}", "Extra data", "byte 35"),
        (b'{"messages": [' + _X[:-1] + b'] "model": 1}', NOT_JSON, "byte 45"),
        (b'{"messages": [' + _X[:-1] + b"], 7: 1}", NOT_JSON, "byte 46"),
        (b'{"messages": [' + _X[:-1] + b'],\n"system": 7}', "", ""),
        (b'{"messages": ' + b"[" * 100_000, "the file's JSON is nested too deeply", "byte 14"),
        (b"[" + _X + b"1" * 5000 + b"]", "a number has too many digits", "item 1 of the list"),
        (b"[" + _X + b'{"role":"user","content":"\xff"}]', "", ""),
        (b'{"input": [' + _X * 2 + b"{}]}", "", ""),
        (b'{"model":"m","prompt":[' + _X[:-1] + b"]}", "", ""),
        (b'"just a string, ' + "long ✓".encode() * 50 + b'"', "", ""),
        (b'{"messages":[' + b'{"role":"wizard","content":"hi"},' * 20 + b"{}]}", "", ""),
    ],
)
def test_a_malformed_document_gets_the_same_typed_error(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, says: str, where: str
) -> None:
    whole, streamed = _both(cli, tmp_path, monkeypatch, data)
    if not says:  # the very same error
        assert streamed == whole
    else:  # the same error (the whole read names line 1 of "JSON lines"), and where
        assert says in whole and says in streamed, (whole, streamed)
        assert where in streamed, streamed


def test_a_document_of_another_format_is_refused_before_it_is_read_again(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(_bodies(tmp_path)["openai.chat"])
    whole = cli("import", str(path), "--format", "anthropic.messages")
    _streamed(monkeypatch)
    assert cli("import", str(path), "--format", "anthropic.messages") == whole
    said = "the input is not anthropic.messages: its shape is openai.chat or azure.chat"
    assert whole[2] == f"srt: error: {said}\n"


# -- memory ------------------------------------------------------------------------------


def _peak(run: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_document_much_larger_than_a_batch_is_imported_in_bounded_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli(str(tmp_path / "m.db"), capsys, monkeypatch)  # (one engine: memory is Python's)
    # 8 MB of a one-line JSON list (what json.dump writes), in batches of 64 KiB: read
    # whole, its bytes alone are 8 MB, its text 32 (4 bytes a character: there is an
    # emoji in it).
    messages = _chat(20)
    body = json.dumps(messages * 1200, ensure_ascii=False).encode()
    assert len(body) > 8_000_000
    path = tmp_path / "big.json"
    path.write_bytes(body)
    monkeypatch.setattr(_import_file, "BATCH_BYTES", 64 << 10)
    code = [-1]
    peak = _peak(lambda: code.__setitem__(0, cli("import", str(path), "--name", "big")[0]))
    assert code[0] == 0
    assert peak < len(body), peak  # (5.6 MB; read whole: 137 MB)
    assert len(cli.stored("big")[0]) == len(messages) * 1200


@pytest.mark.parametrize("shape", ["one line", "pretty", "in a list"])
def test_a_message_far_over_the_limit_is_refused_before_it_is_read_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """One message of 40 MB, with the most text a message may take made 1 MiB (the
    real bound, ``MESSAGE_TEXT``, is 128 MiB): refused with a typed error naming the
    bound, and memory holds a few times the bound and the first line's 4 MiB read to
    tell the format (``BATCH_BYTES``), not the message (read whole: 120 MB)."""
    cli = Cli(str(tmp_path / "m.db"), capsys, monkeypatch)  # (one engine: memory is Python's)
    monkeypatch.setattr(_import_file, "MESSAGE_TEXT", 1 << 20, raising=False)
    message = {"role": "user", "content": "0123456789" * 4_000_000}
    if shape == "one line":
        body = json.dumps(message).encode() + b"\n"
    elif shape == "pretty":
        body = json.dumps(message, indent=2).encode()
    else:
        body = json.dumps([{"role": "system", "content": "hi"}, message]).encode()
    path = tmp_path / "big.json"
    path.write_bytes(body)
    del message
    out: list[Any] = []
    peak = _peak(lambda: out.append(cli("import", str(path), "--name", "big")))
    code, _stdout, err = out[0]
    assert peak < 16 << 20, peak  # (8.7 MB)
    assert code == 1
    assert f"over {1 << 20} characters" in err and "reads one message whole" in err, err
    assert "big" not in cli.names()


def test_a_message_within_the_bound_but_over_a_batch_is_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli(str(tmp_path / "m.db"), capsys, monkeypatch)
    monkeypatch.setattr(_import_file, "MESSAGE_TEXT", 8 << 20, raising=False)
    message = {"role": "user", "content": "0123456789" * 500_000}  # 5 MB: over a batch
    path = tmp_path / "one.json"
    path.write_bytes(json.dumps(message, indent=2).encode())
    assert cli("import", str(path), "--name", "one")[0] == 0
    with srt.Runtime(cli.db) as rt:
        assert rt.session("one", create=False).messages() == [message]
