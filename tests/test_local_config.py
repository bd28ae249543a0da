"""``LocalProvider``'s settings refused before anything starts, each with a
``ConfigError`` naming the setting (before: a ``TypeError`` or ``FileNotFoundError``
from the first request, an ``OverflowError`` for an endless ``startup_timeout``, a
``ProviderError`` about an ``int32_t`` from the child for ``ctx_size * slots``; a
``ctx_size`` over the model's trained context, which llama.cpp silently capped; unknown
``options``, found only by the child). No server is started but one, to show what
``kv_unified`` gives each slot; the model file is the real one, so only the setting is
at fault.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from srt.errors import ConfigError
from srt.local import gguf
from srt.local.slots import Router, state_file
from srt.providers.local import LocalProvider
from support import InProcessCli
from test_local import model

__all__ = ["model"]


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"log_path": 5}, "log_path must be a path"),
        ({"log_path": "{tmp}/no/such/folder/llama.log"}, "log_path: there is no folder"),
        ({"state_dir": 5}, "state_dir must be a path"),
        ({"startup_timeout": math.inf}, "startup_timeout must be a number of seconds, finite"),
        ({"ctx_size": 2**31}, r"ctx_size \* slots must be at most 2147483647"),
        ({"ctx_size": 4096, "slots": 2**20}, r"got 4096 \* 1048576"),
    ],
)
def test_bad_settings_are_config_errors_naming_them(
    model: str, tmp_path: Path, kw: dict[str, Any], says: str
) -> None:
    kw = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in kw.items()}
    with pytest.raises(ConfigError, match=says):
        LocalProvider(model, **kw)


def test_a_log_path_that_cannot_be_opened_at_start_is_a_config_error(
    model: str, tmp_path: Path
) -> None:
    """The folder was there when the provider was made (as a ``Path``), and gone when
    it starts."""
    folder = tmp_path / "logs"
    folder.mkdir()
    p = LocalProvider(model, save_slots=False, log_path=folder / "llama.log")
    folder.rmdir()
    with pytest.raises(ConfigError, match=r"cannot write llama\.cpp's log to .*llama\.log"):
        p.start()
    assert p.pid is None
    p.close()


def test_a_ctx_size_over_the_models_trained_context_is_a_config_error(model: str) -> None:
    """SmolLM2's GGUF metadata says ``llama.context_length`` 8192: llama.cpp caps each
    slot there whatever ``n_ctx`` asks (its log: "the slot context (12032) exceeds the
    training context of the model (8192) - capping", with or without rope scaling
    options), so 12,000 asked would have been 8,192 given (before: no error, the server
    started and allocated for 12,032)."""
    assert gguf.context_length(model) == 8192
    with pytest.raises(ConfigError, match=r"ctx_size 12000 is over the model's trained "):
        LocalProvider(model, ctx_size=12000, slots=1, save_slots=False)
    with pytest.raises(ConfigError, match=r"pass ctx_size=8192 or less"):
        LocalProvider(model, ctx_size=8193, options={"rope_freq_scale": 0.5})
    p = LocalProvider(model, ctx_size=8192, slots=1, save_slots=False)  # the most it takes
    assert p.pid is None
    p.close()


def test_with_kv_unified_the_slot_context_checked_is_the_whole_shared_cache(model: str) -> None:
    """With llama.cpp's unified KV cache every slot may fill the whole cache, so the
    server gives each slot ``ctx_size * slots`` tokens and caps that at the trained
    context (its log: "the slot context (12032) exceeds the training context of the
    model (8192) - capping" for 6000 * 2). srt only compared ``ctx_size``: 6000 * 2
    started, and was capped. Now that is refused; 4096 * 2 is taken, and the real
    server's slots each hold 8192 tokens, as srt now reckons."""
    unified = {"kv_unified": True}
    with pytest.raises(ConfigError, match=r"ctx_size \* slots = 6000 \* 2 = 12000 is over"):
        LocalProvider(model, ctx_size=6000, slots=2, save_slots=False, options=unified)
    with pytest.raises(ConfigError, match=r"pass ctx_size=4096 or less"):
        LocalProvider(model, ctx_size=4097, slots=2, save_slots=False, options=unified)
    # (without it each slot has ctx_size, as before; one slot shares with no one)
    LocalProvider(model, ctx_size=8192, slots=2, save_slots=False).close()
    LocalProvider(model, ctx_size=8192, slots=1, save_slots=False, options=unified).close()
    p = LocalProvider(model, ctx_size=4096, slots=2, threads=1, save_slots=False, options=unified)
    try:
        p.start()
        assert p.server_url is not None
        slots = httpx.get(f"{p.server_url}/slots", timeout=30).json()
        assert [s["n_ctx"] for s in slots] == [4096 * 2, 4096 * 2]
    finally:
        p.close()


def test_a_store_id_that_is_not_hex_is_a_config_error(tmp_path: Path) -> None:
    """A saved state's file is named after its session's store id: one that is not hex
    (``../x``, ``a-b``) would name a file elsewhere or one ``saved_states`` never finds.
    It used to be taken as given; now it is a ``ConfigError``, before any slot is
    planned."""
    assert state_file("0aF9", b"\x01") == "0aF9-01.bin" and state_file(None, b"\x01") == "01.bin"
    for bad in ("../x", "a-b", "zz", "0" * 65, " 0a"):
        with pytest.raises(ConfigError, match="store_id must be hex"):
            state_file(bad, b"\x01")

    class Odd:
        name, store_id = "s", "../../etc"

        def messages_bytes(self) -> list[bytes]:
            return [b'{"role":"user","content":"1"}']

    r = Router(1, str(tmp_path))
    with pytest.raises(ConfigError, match="store_id must be hex"):
        r.ticket(Odd())
    assert r.stats().routes == {} and r.slot_of("s") is None


@pytest.mark.parametrize("head", [b"GGUF" + b"\xff" * 64, b"GGUF" + b"\0" * 64, b"GGU", b""])
def test_a_file_that_is_not_gguf_has_no_trained_context(tmp_path: Path, head: bytes) -> None:
    """(llama.cpp says what is wrong with it when the server starts.)"""
    f = tmp_path / "x.gguf"
    f.write_bytes(head)
    assert gguf.context_length(str(f)) is None
    assert gguf.context_length(str(tmp_path / "absent.gguf")) is None


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"no_such_parameter": 1}, r"options\['no_such_parameter'\]: llama.cpp has no server"),
        ({"sampling.nope": 1}, r"options\['sampling.nope'\]: llama.cpp has no server"),
        ({"nope.seed": 1}, r"options\['nope.seed'\]: llama.cpp has no server"),
        ({"sampling.seed": "one"}, r"options\['sampling.seed'\]: llama.cpp refused a str"),
        ({"n_batch": 2**40}, r"options\['n_batch'\]: llama.cpp refused an? int"),
        ({"sampling.seed": {1}}, r"options\['sampling.seed'\]: a set is not a JSON value"),
        ({1: 1}, r"options: each key must be a dotted name"),
    ],
)
def test_unknown_or_mistyped_options_are_config_errors_before_the_child_starts(
    model: str, options: dict[Any, Any], says: str
) -> None:
    """Checked in the parent against llama.cpp's own parameters (before: the provider was
    made, and its first start failed in the child with a ``ProviderError``)."""
    with pytest.raises(ConfigError, match=says):
        LocalProvider(model, save_slots=False, options=options)


def test_options_the_server_takes_are_accepted(model: str) -> None:
    p = LocalProvider(model, save_slots=False, options={"sampling.seed": 1, "n_batch": 256})
    assert p.pid is None
    p.close()


def test_the_cli_names_the_model_flag_not_the_python_keyword(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``srt chat --provider local --model FILE`` with no such file (before: "pass
    model='path/to/model.gguf'", the Python spelling)."""
    cli = InProcessCli(str(tmp_path / "c.db"), capsys, monkeypatch)
    missing = str(tmp_path / "absent.gguf")
    code, out, err = cli("chat", "--provider", "local", "--model", missing)
    assert code != 0 and out == ""
    assert f"--model {missing!r}: there is no GGUF model file there" in err
    assert "model=" not in err
