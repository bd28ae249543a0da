"""``srt serve``: the OpenAI Responses and Conversations APIs over any upstream srt speaks.

::

    import srt.gateway
    app = srt.gateway.app(srt.gateway.load_config("gateway.toml"))   # an ASGI app

The gateway keeps conversations on the server: a client sends only its new input with a
``previous_response_id`` or a ``conversation``, and srt's store, delta assembly, cache
planner and ledger do the rest (``docs/gateway.md``). It needs the ``gateway`` extra
(Starlette and uvicorn).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ..runtime import Runtime
from .config import Config, Route, Tenant, Upstream, load_config, single

__all__ = [
    "Config",
    "Route",
    "Tenant",
    "Upstream",
    "app",
    "from_environment",
    "load_config",
    "runtime_for",
    "single",
]


def runtime_for(config: Config, db: str | os.PathLike[str] | None = None) -> Runtime:
    """The runtime a config names (``server.db``: a SQLite path, or the URL of another
    registered engine such as ``postgresql://``; srt's default path if unset)."""
    target = db if db is not None else config.db
    return Runtime(target)  # a path, or a URL of a registered engine (srt.store.ENGINES)


def app(config: Config | str | os.PathLike[str], runtime: Runtime | None = None) -> Any:
    """The gateway as an ASGI app (Starlette), for ``config`` (or a TOML file's path).

    ``runtime`` defaults to the one the config's ``server.db`` names, which the app then
    closes when its lifespan ends (a runtime passed in is the caller's to close). Mount
    it, or run it with any ASGI server (``srt serve`` uses uvicorn).
    """
    from .asgi import build

    cfg = config if isinstance(config, Config) else load_config(config)
    if runtime is None:  # the app's own: closed when its lifespan ends
        return build(cfg, runtime_for(cfg), owns_runtime=True)
    return build(cfg, runtime)


def from_environment() -> Any:
    """The app of ``$SRT_GATEWAY_CONFIG`` on ``$SRT_DB`` (each ``srt serve --workers`` worker)."""
    cfg = load_config(os.environ["SRT_GATEWAY_CONFIG"])
    overrides = json.loads(os.environ.get("SRT_GATEWAY_OVERRIDES") or "{}")
    cfg = dataclasses.replace(cfg, **overrides)
    return app(cfg, runtime_for(cfg, os.environ.get("SRT_DB")))
