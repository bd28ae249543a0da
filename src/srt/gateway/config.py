"""The gateway's configuration: one TOML file.

::

    [server]
    host = "127.0.0.1"            # loopback unless told otherwise
    port = 8000
    db = "gateway.db"             # a path (SQLite, the default) or a postgresql:// URL
    max_body_bytes = 4194304      # a larger request is refused with 413
    max_items = 500               # input items per request
    requests_per_minute = 600     # per API key (each tenant may set its own)
    response_retention_days = 30  # then a stored response (and its history) expires
    gc_minutes = 0                # >0: a worker collects what deletions and expiry
                                  # freed this often (one per store); 0: srt gc only
    background_queue = 256        # background responses waiting for a worker slot;
                                  # a create past them is a 429
    open = false                  # true: no API key needed (refused unless on loopback)

    [upstreams.openai]
    kind = "openai"               # openai, responses, azure, anthropic, bedrock,
                                  # compatible or local
    api_key_env = "OPENAI_API_KEY"   # the credential is read from the environment only

    [upstreams.claude]
    kind = "anthropic"
    proxy = "http://proxy.corp:3128"  # optional: every call to this upstream goes through it
    trust_env = true              # without proxy: HTTPS_PROXY, NO_PROXY... choose (default)

    [upstreams.azure]
    kind = "azure"
    base_url = "https://NAME.openai.azure.com"
    api_key_env = "AZURE_OPENAI_API_KEY"
    deployments = { prod-chat = "gpt-4o" }  # optional: what each deployment runs (prices)
    prompt_cache_key = false      # true: send srt's prompt_cache_key (GPT-5.6 and later)
    api = "chat"                  # or "responses": Azure's Responses API (the model sent
                                  # names the deployment; no fixed deployment then)

    [[routes]]
    model = "claude-*"            # a glob on the model name a client asks for
    upstream = "claude"
    upstream_model = "claude-sonnet-4-5"   # optional: the name sent upstream ("*": the
                                           # part of the name a route's one "*" matched)
    context_window = 200000       # for truncation "auto" (tokens)

    [tenants.acme]
    requests_per_minute = 60

No credential needs to be in this file: each upstream names the environment variable
holding its key (``api_key_env``; Bedrock also reads the standard AWS variables), so a
config can be committed and shared by every worker and machine. API keys of tenants are
created with ``srt serve --new-key TENANT`` and stored hashed in the database. A proxy that
needs credentials is best given in the environment (``HTTPS_PROXY``, read when
``trust_env`` is true); a ``proxy`` URL holding them is never shown (not by ``repr()``, not
in an error), but makes the file a secret.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..providers import Anthropic, Azure, Bedrock, OpenAI, OpenAICompatible, Provider
from ..providers.proxies import check
from ..providers.transport import Transport
from ..wire.azure import AzureEndpoint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["KINDS", "Config", "Route", "Tenant", "Upstream", "load_config"]

KINDS = ("openai", "responses", "azure", "anthropic", "bedrock", "compatible", "local")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SERVER_KEYS = frozenset(
    "host port db max_body_bytes max_items requests_per_minute open workers threads "
    "default_max_output_tokens response_retention_days gc_minutes background_queue".split()
)
_UPSTREAM_KEYS = frozenset(
    "kind api_key_env base_url region deployment api_version model ctx_size slots "
    "threads state_dir extra_params proxy trust_env deployments prompt_cache_key api".split()
)
_ROUTE_KEYS = frozenset("model upstream upstream_model context_window".split())
_TENANT_KEYS = frozenset("requests_per_minute max_items".split())
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Upstream:
    """One upstream provider. ``api_key_env`` names the variable holding its key.

    ``proxy`` sends every call to it through that proxy (its credentials, if any, are never
    shown); without it, ``trust_env`` lets the environment choose, as for any provider
    (``docs/providers.md``, Proxies)."""

    name: str
    kind: str
    api_key_env: str | None = None
    base_url: str | None = None
    region: str | None = None
    deployment: str | None = None
    api_version: str | None = None
    model: str | None = None  # local: the GGUF file
    ctx_size: int = 4096
    slots: int = 2
    threads: int | None = None
    state_dir: str | None = None
    extra_params: Mapping[str, Any] = field(default_factory=dict)
    proxy: str | None = field(default=None, repr=False)  # may hold credentials
    trust_env: bool = True
    deployments: Mapping[str, str] | None = None  # azure: deployment name -> model it runs
    prompt_cache_key: bool = False  # azure: send srt's cache key (GPT-5.6 and later)
    api: str | None = None  # azure: "chat" (the default) or "responses"

    def __post_init__(self) -> None:
        where = f"[upstreams.{self.name}]"
        if not isinstance(self.trust_env, bool):
            raise ConfigError(f"{where} trust_env must be true or false")
        self._check_azure_api(where)
        if self.kind != "azure" and (self.deployments is not None or self.prompt_cache_key):
            raise ConfigError(f"{where} deployments and prompt_cache_key are for kind azure only")
        if not isinstance(self.prompt_cache_key, bool):
            raise ConfigError(f"{where} prompt_cache_key must be true or false")
        if self.deployments is not None and not (
            isinstance(self.deployments, Mapping)
            and all(
                isinstance(k, str) and k and isinstance(v, str) and v
                for k, v in self.deployments.items()
            )
        ):
            raise ConfigError(
                f"{where} deployments must be a table of deployment names to model names"
            )
        if self.proxy is not None and self.kind == "local":
            raise ConfigError(f"{where} proxy: the local model is never behind a proxy")
        if self.kind != "local":  # at startup rather than at the first request; an
            # error names the setting or the environment's variable, never its value
            check(self.proxy, self.trust_env, f"{where} proxy")

    def _check_azure_api(self, where: str) -> None:
        if self.api is None:
            return
        if self.kind != "azure":
            raise ConfigError(f"{where} api is for kind azure only (kind responses is OpenAI's)")
        if self.api not in ("chat", "responses"):
            raise ConfigError(f'{where} api must be "chat" or "responses", got {self.api!r:.40}')
        if self.api == "responses" and self.deployment is not None:
            raise ConfigError(
                f'{where} deployment is for api "chat": Azure\'s Responses API reads the '
                "deployment from the model sent (a route's upstream_model)"
            )

    def key(self) -> str | None:
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ConfigError(
                f"upstream {self.name!r}: environment variable {self.api_key_env} is not set"
            )
        return value

    def provider(self, model: str, on_exchange: Callable[[float], None] | None = None) -> Provider:
        """A provider for this upstream (Azure: one per deployment, named by ``model``)
        whose transports go through ``proxy`` (or as ``trust_env`` says) and tell
        ``on_exchange`` each call's time (``Transport``); the local model's provider makes
        its own."""
        key = self.key()
        kind = self.kind
        if kind in ("compatible", "azure") and not self.base_url:
            raise ConfigError(f"upstream {self.name!r}: kind {kind} needs base_url")
        if kind == "local":
            return self._local()
        transport = Transport(on_exchange=on_exchange, proxy=self.proxy, trust_env=self.trust_env)
        try:
            return self._remote(model, key, transport)
        except BaseException:
            transport.close()
            raise

    def _remote(self, model: str, key: str | None, transport: Transport) -> Provider:
        kind, base_url = self.kind, self.base_url or ""  # compatible, azure: checked given
        net: dict[str, Any] = {
            "transport": transport,
            "proxy": self.proxy,  # for the async transport the provider makes itself
            "trust_env": self.trust_env,
        }
        if kind in ("openai", "responses"):
            api = "chat" if kind == "openai" else "responses"
            return OpenAI(key, base_url=self.base_url, api=api, **net)
        if kind == "compatible":
            return OpenAICompatible(base_url, api_key=key, extra_params=self.extra_params, **net)
        if kind == "anthropic":
            return Anthropic(key, base_url=self.base_url, **net)
        if kind == "bedrock":
            return Bedrock(region=self.region, api_key=key, endpoint_url=self.base_url, **net)
        endpoint = AzureEndpoint(  # azure
            base_url,
            deployment=self.deployment or model,
            api_version=self.api_version,
            use_v1=self.api_version is None,
        )
        return Azure(
            endpoint,
            api_key=key,
            api=self.api or "chat",
            deployments=self.deployments,
            prompt_cache_key=self.prompt_cache_key,
            **net,
        )

    def _local(self) -> Provider:
        from ..providers.local import LocalProvider

        return LocalProvider(
            self.model,
            ctx_size=self.ctx_size,
            slots=self.slots,
            threads=self.threads,
            state_dir=self.state_dir,
        ).start()


@dataclass(frozen=True)
class Route:
    """Client model names matching ``model`` (a glob) go to ``upstream``."""

    model: str
    upstream: str
    upstream_model: str | None = None
    context_window: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not isinstance(self.upstream, str):
            raise ConfigError("a route needs model (a glob) and upstream (a name), as strings")
        where = f"route {self.model!r}"
        if self.upstream_model is not None and (
            not isinstance(self.upstream_model, str) or not self.upstream_model
        ):
            raise ConfigError(f"{where}: upstream_model must be a model name (a string)")
        if "*" in (self.upstream_model or "") and (
            self.model.count("*") != 1 or any(c in self.model for c in "?[")
        ):
            raise ConfigError(
                f"{where}: upstream_model {self.upstream_model!r} takes the part of the name "
                "the route's '*' matched, so the route's model needs exactly one '*' (and no "
                "'?' or '['), as in model = \"azure/*\", upstream_model = \"*\""
            )
        cw = self.context_window
        if cw is not None and (isinstance(cw, bool) or not isinstance(cw, int) or cw < 1):
            raise ConfigError(f"{where}: context_window must be a positive integer, got {cw!r}")

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.model)

    def upstream_name(self, name: str) -> str | None:
        """The model name sent upstream for the client's ``name`` (which ``matches``):
        ``upstream_model`` with its ``*`` replaced by the part of ``name`` the route's
        ``*`` matched (``"azure/*"`` and ``"*"`` send ``"gpt-4o"`` for ``"azure/gpt-4o"``);
        None: the client's name as it is."""
        if self.upstream_model is None or "*" not in self.upstream_model:
            return self.upstream_model
        head, _, tail = self.model.partition("*")
        return self.upstream_model.replace("*", name[len(head) : len(name) - len(tail)])


@dataclass(frozen=True)
class Tenant:
    name: str
    requests_per_minute: int | None = None
    max_items: int | None = None


@dataclass(frozen=True)
class Config:
    """What ``srt serve`` runs with (see the module docstring for the TOML form)."""

    upstreams: Mapping[str, Upstream]
    routes: tuple[Route, ...]
    tenants: Mapping[str, Tenant] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8000
    db: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    max_items: int = 500
    requests_per_minute: int = 600
    open: bool = False
    workers: int = 1
    threads: int = 64
    #: ``background`` responses queued for a worker slot (a thread of ``threads``) at
    #: most; a create past them is a 429 (``gateway/slots.py``).
    background_queue: int = 256
    default_max_output_tokens: int | None = None
    #: Stored responses expire after this many days (OpenAI's 30); None keeps them.
    response_retention_days: float | None = 30.0
    #: A worker's sweep collects the store's unreachable nodes and messages (``gc``) once
    #: in this many minutes, one worker per store; 0 (the default): never, ``srt gc``
    #: only (a whole-store gc holds the write lock: docs/gateway.md, "Deletion").
    gc_minutes: float = 0.0

    def __post_init__(self) -> None:
        for route in self.routes:
            if route.upstream not in self.upstreams:
                raise ConfigError(
                    f"route {route.model!r} names upstream {route.upstream!r}, which is "
                    f"not defined (defined: {sorted(self.upstreams)})"
                )
        if self.open and self.host not in _LOOPBACK:
            raise ConfigError(
                "open = true (no API keys) is only allowed on a loopback address; "
                f"host is {self.host!r}"
            )
        for name, value in (
            ("port", self.port),
            ("max_body_bytes", self.max_body_bytes),
            ("max_items", self.max_items),
            ("requests_per_minute", self.requests_per_minute),
            ("workers", self.workers),
            ("threads", self.threads),
            ("background_queue", self.background_queue),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (0 if name == "port" else 1)
            ):
                raise ConfigError(f"server.{name} must be a positive integer, got {value!r}")
        gc = self.gc_minutes
        if (
            isinstance(gc, bool)
            or not isinstance(gc, (int, float))
            or not (gc == 0 or 1 <= gc <= 525600)
        ):
            raise ConfigError(
                "server.gc_minutes must be 0 (no collection by the workers: srt gc only) "
                f"or a number of minutes from 1 to 525600, got {gc!r:.40}"
            )

    def route(self, model: str) -> Route | None:
        for route in self.routes:
            if route.matches(model):
                return route
        return None

    def tenant(self, name: str) -> Tenant:
        return self.tenants.get(name) or Tenant(name)


def _table(data: Any, where: str, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(data) - keys)
    if unknown:
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r} (known: {sorted(keys)})")
    return data


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"{what} {value!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit"
        )
    return value


def from_dict(data: Mapping[str, Any]) -> Config:
    """A ``Config`` from parsed TOML; ``ConfigError`` names the first bad setting."""
    top = _table(dict(data), "the config", frozenset({"server", "upstreams", "routes", "tenants"}))
    server = _table(top.get("server", {}), "[server]", _SERVER_KEYS)
    upstreams: dict[str, Upstream] = {}
    for name, raw in _table(
        top.get("upstreams", {}), "[upstreams]", frozenset(top.get("upstreams", {}) or ())
    ).items():
        _name(name, "upstream")
        up = _table(raw, f"[upstreams.{name}]", _UPSTREAM_KEYS)
        kind = up.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"[upstreams.{name}] kind must be one of {', '.join(KINDS)}")
        try:
            upstreams[name] = Upstream(name=name, **up)
        except TypeError as exc:
            raise ConfigError(f"[upstreams.{name}]: {exc}") from None
    routes = []
    raw_routes = top.get("routes", [])
    if not isinstance(raw_routes, list):
        raise ConfigError("routes must be an array of tables ([[routes]])")
    for i, raw in enumerate(raw_routes):
        r = _table(raw, f"routes[{i}]", _ROUTE_KEYS)
        if not isinstance(r.get("model"), str) or not isinstance(r.get("upstream"), str):
            raise ConfigError(f"routes[{i}] needs model (a glob) and upstream (a name)")
        routes.append(Route(**r))
    tenants = {}
    for name, raw in _table(
        top.get("tenants", {}), "[tenants]", frozenset(top.get("tenants", {}) or ())
    ).items():
        _name(name, "tenant")
        tenants[name] = Tenant(name, **_table(raw, f"[tenants.{name}]", _TENANT_KEYS))
    try:
        return Config(upstreams=upstreams, routes=tuple(routes), tenants=tenants, **server)
    except TypeError as exc:
        raise ConfigError(f"[server]: {exc}") from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read a TOML config file (see the module docstring)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the config file {os.fspath(path)!r}: {exc.strerror}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {os.fspath(path)!r} is not valid TOML: {exc}") from None
    return from_dict(data)


def single(kind: str, **options: Any) -> Config:
    """A config with one upstream of ``kind`` that every model name routes to."""
    if kind not in KINDS:
        raise ConfigError(f"the upstream kind must be one of {', '.join(KINDS)}")
    up = {k: v for k, v in options.items() if k in _UPSTREAM_KEYS and v is not None}
    server = {k: v for k, v in options.items() if k in _SERVER_KEYS and v is not None}
    upstream_model = options.get("upstream_model")
    route = Route("*", kind, upstream_model=upstream_model)
    return Config(upstreams={kind: Upstream(name=kind, kind=kind, **up)}, routes=(route,), **server)
