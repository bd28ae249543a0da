"""The local provider's saved KV states (issue 13, item 5).

A saved slot state decodes back to the conversation it holds, so it is kept like the
store: 0600 files in 0700 directories (the server child runs under umask 077, and
older 0644 files and 0755 directories are tightened), named after their store
(``<store id>-<prefix hash>.bin``), and removed by ``gc`` once their conversation is
deleted and collected, with the bytes freed reported by ``srt gc``.

The first tests need no model: they plant state files by name. The last runs the
real llama.cpp server with SmolLM2 (``test_local.model`` installs it when missing),
under umask 022 with the default state directory, a pasted canary secret scrubbed by
the redaction hook, then deletes the session and collects it.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.common import emit
from srt import _core, cli
from srt.local.slots import Router, private_dir, state_file
from test_local import STARTED, model  # the pinned server and model, installed if missing

__all__ = ["model"]


def _mode(p: str | Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$XDG_CACHE_HOME`` in the test's own directory: srt's default state directory."""
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def _states(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in root.rglob("*.bin")}


def test_state_directories_and_files_are_private(tmp_path: Path) -> None:
    d = tmp_path / "old" / "model"
    d.mkdir(parents=True, mode=0o755)
    d.chmod(0o755)
    old = d / "deadbeef.bin"
    old.write_bytes(b"kv")
    old.chmod(0o644)
    Router(1, str(d))
    assert _mode(d) == 0o700 and _mode(old) == 0o600
    fresh = tmp_path / "new" / "a" / "b"
    private_dir(str(fresh))
    assert [_mode(p) for p in (tmp_path / "new", fresh.parent, fresh)] == [0o700] * 3


def _plant(d: Path, store: str, prefix: bytes, size: int = 1000) -> Path:
    p = d / state_file(store, prefix)
    p.write_bytes(b"\0" * size)
    p.chmod(0o600)
    return p


def test_gc_removes_the_states_of_collected_conversations(
    rt: srt.Runtime, tmp_path: Path, cache_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keep, drop = rt.session("keep"), rt.session("drop")
    keep.append({"role": "user", "content": "stays"})
    drop.append({"role": "user", "content": "stays"}, {"role": "assistant", "content": "goes"})
    shared, gone = keep.prefix_hashes()[-1], drop.prefix_hashes()[-1]
    assert drop.prefix_hashes()[0] == shared  # both begin with the same message
    store = keep.store_id
    d = cache_home / "srt" / "llama-slots" / "some-model"
    d.mkdir(parents=True)
    kept = _plant(d, store, shared, 1000)
    doomed = _plant(d, store, gone, 3000)
    other = _plant(d, "0" * 32, gone, 500)  # another store's state: never ours to judge
    legacy = d / (gone.hex() + ".bin")  # named before states carried their store
    legacy.write_bytes(b"kv")
    rt.delete("drop")
    dry = rt.gc(dry_run=True)
    assert (dry.state_files, dry.state_bytes) == (1, 3000) and doomed.exists()
    assert cli.main(["--db", rt.path, "gc"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 saved KV state of the local provider (2.9 KiB)" in out
    assert not doomed.exists() and kept.exists() and other.exists() and legacy.exists()
    again = rt.gc(state_dirs=[str(d)])
    assert (again.state_files, again.state_bytes) == (0, 0)


def test_a_keyed_store_names_its_states_with_its_keyed_hashes(tmp_path: Path) -> None:
    with srt.Runtime(str(tmp_path / "k.db"), hash_key=os.urandom(32)) as rt:
        s = rt.session("s")
        s.append({"role": "user", "content": "hi"})
        (h,) = s.prefix_hashes()
        assert h != _core.chain(_core.ROOT, _core.digest(s.messages_bytes()[0]))
        router = Router(1, str(tmp_path / "states"))
        router.route(s)
        slot = router._slots[0]
        assert slot.store == s.store_id and slot.file() == state_file(s.store_id, h)


PASTED = "CANARY-PASTED-" + os.urandom(6).hex()


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_real_saved_states_are_private_and_collected(
    model: str, tmp_path: Path, cache_home: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    from srt.providers.local import LocalProvider

    def scrub(text: str) -> str:
        return text.replace(PASTED, "[removed]")

    db = str(tmp_path / "chats" / "srt.db")
    with _umask(0o022):
        rt = srt.Runtime(db, redact=scrub)
        p = LocalProvider(model, ctx_size=1024, slots=1, threads=1).start()
        assert p.pid is not None
        STARTED.append(p.pid)
        try:
            s = rt.session("secret-chat")
            s.append({"role": "user", "content": f"my password is {PASTED}; say ok"})
            s.send(p, model=p.model_name, max_tokens=8, temperature=0, **p.params_for(s))
        finally:
            p.close()
    base = cache_home / "srt" / "llama-slots"
    states = _states(base)
    assert states, "the provider saved no state on close"
    files = list(base.rglob("*.bin"))
    modes = {
        "llama-slots dir": oct(_mode(base)),
        "model dir": oct(_mode(files[0].parent)),
        "state files": sorted({oct(_mode(f)) for f in files}),
    }
    canary = sum(f.read_bytes().count(PASTED.encode()) for f in files)
    named = all(f.name.startswith(s.store_id + "-") for f in files)
    rt.delete("secret-chat")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["--db", db, "gc"])
    rt.close()
    left = _states(base)
    figures = {
        "modes": modes,
        "state_files_saved": len(states),
        "state_bytes_saved": sum(states.values()),
        "named_after_the_store": named,
        "pasted_canary_in_state_files": canary,
        "srt_gc": out.getvalue().strip().splitlines(),
        "state_files_left_after_delete_and_gc": len(left),
    }
    emit("slots_private_and_collected", figures, capsys, tmp_path_factory.getbasetemp())
    assert modes == {
        "llama-slots dir": "0o700",
        "model dir": "0o700",
        "state files": ["0o600"],
    }
    assert named and canary == 0
    assert code == 0 and any("saved KV state" in line for line in figures["srt_gc"])
    assert left == {}
