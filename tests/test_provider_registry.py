"""A new provider is one file plus one registry line.

The provider below is written here, as a user or a plug-in author would write it, to
a module of its own in a temporary directory. It joins srt by one line in
``srt.providers.PROVIDERS``, or, from another package, by one entry point in the
``srt.providers`` group; then sessions send through it, the ledger names it and the
``srt`` command offers it. Nothing in srt changes.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import srt
from srt import cli, providers
from srt.providers import PROVIDERS, Options
from srt.testing import ProviderServer

KEY = "sk-echo-test-key"

#: The whole provider: one file.
ECHO = textwrap.dedent(
    '''
    """Echo: an OpenAI Chat Completions server at a base URL, with a fixed key header."""

    import os

    from srt.providers import Options, Provider


    class Echo(Provider):
        name = "echo"
        format = "openai.chat"
        default_model = "echo-1"

        def __init__(self, base_url: str) -> None:
            super().__init__()
            self.base_url = base_url.rstrip("/")
            self._secrets = (os.environ.get("ECHO_KEY", ""),)

        @classmethod
        def from_options(cls, options: Options):
            return cls(options.base_url or "http://127.0.0.1:9/v1"), (
                options.model or cls.default_model
            )

        def url(self, model: str, stream: bool) -> str:
            return self.base_url + "/chat/completions"

        def auth_headers(self) -> dict[str, str]:
            return {"authorization": "Bearer " + os.environ.get("ECHO_KEY", "")}
    '''
)


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding the provider's module (and, for the entry-point test, the
    ``.dist-info`` of a package that declares it), first on ``sys.path``."""
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "srt_echo_test.py").write_text(ECHO, encoding="utf-8")
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("ECHO_KEY", KEY)
    yield d
    sys.modules.pop("srt_echo_test", None)


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server


def test_one_registry_line(
    plugin_dir: Path, srv: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "echo" not in providers.names()
    monkeypatch.setitem(PROVIDERS, "echo", "srt_echo_test:Echo")  # the one line

    assert providers.names()[-1] == "echo"
    provider, model = providers.factory("echo")(Options(base_url=srv.url + "/v1"))
    assert (type(provider).__name__, model) == ("Echo", "echo-1")
    srv.script("openai", ["Hello from echo."])
    with srt.Runtime(str(tmp_path / "a.db")) as rt:
        s = rt.session("s")
        s.append({"role": "user", "content": "hi"})
        reply = s.send(provider, model=model)
        assert reply.message["content"] == "Hello from echo."
        (row,) = s.calls()
        assert (row["provider"], row["format"], row["status"]) == ("echo", "openai.chat", "ok")
        assert KEY not in repr(row)
    provider.close()

    # The srt command offers it and uses it, from the same registry.
    srv.script("openai", ["Echoed."])
    out = io.StringIO()
    argv = ["--db", str(tmp_path / "cli.db"), "prompt", "--provider", "echo"]
    with redirect_stdout(out):
        code = cli.main([*argv, "--base-url", srv.url + "/v1", "say it"])
    assert (code, out.getvalue()) == (0, "Echoed.\n")


def test_one_entry_point_from_another_package(plugin_dir: Path, srv: ProviderServer) -> None:
    info = plugin_dir / "srt_echo_test-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: srt-echo-test\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[srt.providers]\necho = srt_echo_test:Echo\n", encoding="utf-8"
    )
    assert "echo" not in PROVIDERS
    assert "echo" in providers.names()  # found by its entry point alone

    # A new process with the package on its path: `srt prompt --provider echo`.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SRT_", "OPENAI_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(plugin_dir), *sys.path]), ECHO_KEY=KEY)
    srv.script("openai", ["From a plug-in."])
    argv = ["--db", str(plugin_dir / "p.db"), "prompt", "--provider", "echo"]
    r = subprocess.run(
        [sys.executable, "-m", "srt", *argv, "--base-url", srv.url + "/v1", "hi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "From a plug-in.\n", "")


def test_unknown_and_broken_providers_are_config_errors(
    plugin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(srt.ConfigError, match="no provider named 'nope'"):
        providers.factory("nope")
    monkeypatch.setitem(PROVIDERS, "gone", "srt_no_such_module_anywhere:Gone")
    with pytest.raises(srt.ConfigError, match="--provider gone is not available here"):
        providers.factory("gone")
    monkeypatch.setitem(PROVIDERS, "odd", "srt_echo_test:os")
    with pytest.raises(srt.ConfigError, match="neither a Provider nor callable"):
        providers.factory("odd")
