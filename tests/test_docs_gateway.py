"""docs/gateway.md's config and Python blocks, and README.md's gateway example, run as
written: the TOML is read by ``srt.gateway.load_config`` into what its comments say, the
Python block builds an app that serves, and README's ``srt serve --upstream local --open``
answers its ``openai`` client (on the pinned SmolLM2, on a free port instead of 8000)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import openai
import pytest

from gateway_support import serving
from rel_support.waits import WAIT_S, line_of
from support import cli_env, local_model

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "gateway.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_config_block_reads_as_its_comments_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import srt.gateway

    (toml,) = re.findall(r"```toml\n(.*?)```", PAGE, flags=re.S)
    (tmp_path / "gateway.toml").write_text(toml, encoding="utf-8")
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.setenv(var, "sk-docs-gateway-test")
    cfg = srt.gateway.load_config(str(tmp_path / "gateway.toml"))
    assert (cfg.host, cfg.port, cfg.db, cfg.open) == ("127.0.0.1", 8000, "gateway.db", False)
    assert (cfg.max_body_bytes, cfg.max_items, cfg.requests_per_minute) == (4194304, 500, 600)
    assert (cfg.threads, cfg.gc_minutes) == (64, 0)
    assert {n: u.kind for n, u in cfg.upstreams.items()} == {
        "openai": "openai",
        "claude": "anthropic",
        "azure": "azure",
    }
    assert cfg.upstreams["azure"].deployments == {"prod-chat": "gpt-4o"}
    assert [(r.model, r.upstream, r.upstream_model) for r in cfg.routes] == [
        ("claude-*", "claude", "claude-sonnet-4-5"),
        ("azure/*", "azure", "*"),
        ("*", "openai", None),
    ]
    assert cfg.routes[0].context_window == 200000
    assert cfg.tenants["acme"].requests_per_minute == 60


def test_the_python_block_builds_an_app_that_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", PAGE, flags=re.S)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SRT_DB", str(tmp_path / "gw.db"))  # the store single() names
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-gateway-test")
    ns: dict[str, object] = {}
    exec(compile(code, "docs/gateway.md", "exec"), ns)
    with serving(ns["app"]) as url:
        client = openai.OpenAI(base_url=url, api_key="local", max_retries=0)
        assert [m.id for m in client.models.list()] == ["*"]
    assert (tmp_path / "gw.db").is_file()


def test_the_readme_gateway_example(tmp_path: Path) -> None:
    local_model()  # installs the pinned server and model if missing, as test_local does
    (serve,) = [
        ln.split("#")[0].split()
        for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S)
        for ln in block.splitlines()
        if ln.startswith("srt serve")
    ]
    assert serve == ["srt", "serve", "--upstream", "local", "--open"]
    (code,) = re.findall(r"```py\n(.*?)```", README, flags=re.S)
    assert code.count("http://127.0.0.1:8000/v1") == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with subprocess.Popen(
        [sys.executable, "-m", "srt", *serve[1:], "--port", str(port)],
        cwd=tmp_path,
        env=cli_env(tmp_path / "srt.db", XDG_CACHE_HOME=str(tmp_path / "cache")),
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            first = line_of(proc.stderr, "the gateway's first line")
            assert first.startswith(f"srt gateway on http://127.0.0.1:{port}/v1"), first
            deadline = time.monotonic() + WAIT_S
            while True:  # the line comes before uvicorn listens
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, f"the gateway never listened on {port}"
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            ns: dict[str, object] = {}
            code = code.replace("http://127.0.0.1:8000/v1", f"http://127.0.0.1:{port}/v1")
            # The example never closes its client, as a script would not: its socket is
            # closed when it is collected, with a ResourceWarning that is the example's.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                exec(compile(code, "README.md", "exec"), ns)
            r = ns["r"]
            assert isinstance(r, openai.types.responses.Response)
            assert r.output_text and r.previous_response_id
            # SmolLM2 repeating itself runs to the local provider's reply limit (a quarter
            # of the slot: LocalProvider.params_default); the reply is then incomplete
            # for that reason, never for a context the conversation outgrew
            assert r.status == "completed" or (
                r.status == "incomplete"
                and r.incomplete_details is not None
                and r.incomplete_details.reason == "max_output_tokens"
            ), r
        finally:
            proc.terminate()
            proc.wait(60)
