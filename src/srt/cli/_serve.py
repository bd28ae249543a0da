"""``srt serve``: run the gateway (``srt.gateway``) with uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ._common import CommandError, redact_url

if TYPE_CHECKING:
    from ..gateway.config import Config

__all__ = ["add_serve", "serve"]

#: Idle keep-alive connections stay open this long (uvicorn's 5 s default makes a client
#: that reuses a connection just as the server closes it see a transport error).
KEEP_ALIVE_S = 75
#: Pending connections the listening socket holds (many clients connecting at once).
BACKLOG = 4096
#: The ``--upstream`` kinds (``srt.gateway.config.KINDS``, listed here so that
#: ``srt --help`` imports no provider).
KINDS = ("openai", "responses", "azure", "anthropic", "bedrock", "compatible", "local")


def add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="the gateway's TOML config (docs/gateway.md)")
    p.add_argument(
        "--upstream",
        metavar="KIND",
        help=f"without --config: one upstream of this kind ({', '.join(KINDS)}) for every "
        "model, its key from the environment",
    )
    p.add_argument("--base-url", metavar="URL", help="the upstream's base URL (with --upstream)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--workers", type=int, help="worker processes (default 1)")
    p.add_argument(
        "--open",
        action="store_true",
        help="accept requests without an API key (refused unless bound to loopback)",
    )
    p.add_argument(
        "--new-key",
        metavar="TENANT",
        help="create an API key for TENANT, print it once (only its hash is stored), exit",
    )


def serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .. import gateway
        from ..gateway.records import Records
    except ImportError as exc:
        raise ConfigError(
            f"srt serve needs the gateway extra: pip install 'stateful-runtime[gateway]' ({exc})"
        ) from None
    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if v is not None
    }
    if args.open:
        overrides["open"] = True
    if args.config:
        import dataclasses

        cfg = dataclasses.replace(gateway.load_config(args.config), **overrides)
    else:
        kind = args.upstream or os.environ.get("SRT_UPSTREAM") or "openai"
        cfg = gateway.single(kind, base_url=args.base_url, **overrides)
        if kind in ("openai", "responses", "compatible"):
            cfg = dataclasses_replace_key(cfg, kind, "OPENAI_API_KEY")
        elif kind == "anthropic":
            cfg = dataclasses_replace_key(cfg, kind, "ANTHROPIC_API_KEY")
    db = cfg.db or args.db
    if args.new_key:
        with gateway.runtime_for(cfg, db) as rt:
            print(Records(rt.store).create_key(args.new_key))
        return 0
    _check_listen(cfg.host, cfg.port)
    print(
        f"srt gateway on http://{cfg.host}:{cfg.port}/v1 (store: {redact_url(db)}; "
        f"{'no API key needed' if cfg.open else 'API keys required'})",
        file=sys.stderr,
    )
    if cfg.workers > 1:
        if not args.config:
            raise ConfigError("--workers above 1 needs --config (each worker reads it)")
        os.environ["SRT_GATEWAY_CONFIG"] = os.path.abspath(args.config)
        os.environ["SRT_GATEWAY_OVERRIDES"] = json.dumps(overrides)
        os.environ["SRT_DB"] = db
        uvicorn.run(
            "srt.gateway:from_environment",
            timeout_keep_alive=KEEP_ALIVE_S,
            backlog=BACKLOG,
            factory=True,
            host=cfg.host,
            port=cfg.port,
            workers=cfg.workers,
            log_level="warning",
        )
        return 0
    with _exit_on_sigterm(), gateway.runtime_for(cfg, db) as rt:
        uvicorn.run(
            gateway.app(cfg, rt),
            timeout_keep_alive=KEEP_ALIVE_S,
            backlog=BACKLOG,
            host=cfg.host,
            port=cfg.port,
            log_level="warning",
        )
    return 0


def _check_listen(host: str, port: int) -> None:
    """Refuse an address the gateway cannot listen on (a port in use, a host that is no
    address of this machine) before saying it serves there: uvicorn logged its own
    error after the banner and exited 3."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as uvicorn)
            sock.bind(addr)
    except OSError as exc:  # (socket.gaierror is one)
        raise CommandError(f"cannot listen on {where}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` in the block, so the runtime is closed (its store
    gives the heap's unused end back, ``SQLiteStore.close``) rather than dropped: uvicorn
    stops gracefully on SIGTERM and then raises the signal again under the handler it
    found, whose default ends the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # (signal handlers belong to the main thread)
        return

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def dataclasses_replace_key(cfg: Config, name: str, env: str) -> Config:
    import dataclasses

    up = dataclasses.replace(cfg.upstreams[name], api_key_env=env)
    return dataclasses.replace(cfg, upstreams={name: up})
