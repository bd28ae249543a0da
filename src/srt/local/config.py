"""The ``local`` provider's settings refused before anything starts, each with a
``ConfigError`` naming the setting: a value of the wrong kind or out of range, a
``ctx_size`` over the model's trained context, ``options`` llama.cpp has no parameter
for or refuses. (``srt.providers.local.LocalProvider`` calls these first.)"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from . import child, gguf

__all__ = ["MAX_CTX", "check_context", "check_options", "check_settings"]

#: The most tokens llama.cpp's server can be given: its ``n_ctx`` is an ``int32``.
MAX_CTX = 2**31 - 1


def check_settings(
    model: Any,
    ctx_size: Any,
    threads: Any,
    slots: Any,
    cache_ram_mib: Any,
    max_saved_mib: Any,
    startup_timeout: Any,
    state_dir: Any,
    log_path: Any,
) -> None:
    """``ConfigError`` naming the first of ``LocalProvider``'s settings of the wrong kind
    or out of range (before anything is looked for or started)."""
    for what, path in (("model", model), ("state_dir", state_dir), ("log_path", log_path)):
        if path is not None and not isinstance(path, (str, os.PathLike)):
            kind = "a GGUF file's path" if what == "model" else "a path"
            raise ConfigError(f"{what} must be {kind} (a str or a path), got {type(path).__name__}")
    if log_path is not None:
        folder = os.path.dirname(os.path.abspath(os.fspath(log_path)))
        if not os.path.isdir(folder):
            raise ConfigError(f"log_path: there is no folder {folder!r} to write the log in")
    whole = (
        ("ctx_size", ctx_size, 64, False),
        ("threads", threads, 1, True),
        ("slots", slots, 1, False),
        ("cache_ram_mib", cache_ram_mib, 0, True),
        ("max_saved_mib", max_saved_mib, 0, False),
    )
    for name, value, least, optional in whole:
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            got = repr(value) if isinstance(value, int) else type(value).__name__
            none = " (or None)" if optional else ""
            raise ConfigError(f"{name} must be a whole number >= {least}{none}, got {got}")
    if ctx_size * slots > MAX_CTX:
        raise ConfigError(
            f"ctx_size * slots must be at most {MAX_CTX} tokens (llama.cpp's n_ctx is a "
            f"32-bit int), got {ctx_size} * {slots}"
        )
    if (
        isinstance(startup_timeout, bool)
        or not isinstance(startup_timeout, (int, float))
        or not 0 < startup_timeout < math.inf
    ):
        raise ConfigError("startup_timeout must be a number of seconds, finite and > 0")


def check_options(options: Mapping[str, Any]) -> None:
    """``ConfigError`` naming the first of ``options`` that llama.cpp's server parameters
    do not have, or that the parameter refuses: each is set, as the child sets it
    (``child.set_param``), on a fresh ``xllamacpp.CommonParams`` (only imported when there are
    options, about 80 ms; the values are not shown, an ``api_keys`` may be among them)."""
    if not options:
        return
    params = importlib.import_module("xllamacpp").CommonParams()
    for key, value in options.items():
        if not isinstance(key, str):
            raise ConfigError(f"options: each key must be a dotted name (a str), got {key!r}")
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"options[{key!r}]: a {type(value).__name__} is not a JSON value (the server "
                "child reads its settings as JSON)"
            ) from None
        try:
            child.set_param(params, key, value)
        except child.NoParameter:
            raise ConfigError(
                f"options[{key!r}]: llama.cpp has no server parameter {key!r} "
                "(a dotted name of xllamacpp.CommonParams, e.g. 'sampling.seed')"
            ) from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise ConfigError(
                f"options[{key!r}]: llama.cpp refused a {type(value).__name__} ({exc})"
            ) from None


def check_context(
    path: str, ctx_size: int, slots: int = 1, options: Mapping[str, Any] | None = None
) -> None:
    """``ConfigError`` for a slot context over the model's trained context (GGUF
    ``<arch>.context_length``): llama.cpp's server caps each slot there, whatever it is
    asked (rope scaling options do not lift the cap), so the rest would be promised and
    never given. A slot's context is ``ctx_size``, or, with llama.cpp's unified KV cache
    (``options={"kv_unified": True}``), the whole shared cache of ``ctx_size * slots``
    tokens, which any slot may fill: llama.cpp checks and caps that (its log: "the slot
    context (ctx_size * slots) exceeds the training context"). A file whose header
    cannot be read is left to llama.cpp."""
    trained = gguf.context_length(path)
    if trained is None:
        return
    unified = slots > 1 and bool((options or {}).get("kv_unified"))
    per_slot = ctx_size * slots if unified else ctx_size
    if per_slot <= trained:
        return
    if unified:
        raise ConfigError(
            f"ctx_size * slots = {ctx_size} * {slots} = {per_slot} is over the model's "
            f"trained context of {trained} tokens (its GGUF metadata): with kv_unified each "
            f"slot may use the whole shared cache, and llama.cpp would cap it at {trained}; "
            f"pass ctx_size={trained // slots} or less, or leave kv_unified off"
        )
    raise ConfigError(
        f"ctx_size {ctx_size} is over the model's trained context of {trained} "
        f"tokens (its GGUF metadata): llama.cpp would cap each slot at {trained}; "
        f"pass ctx_size={trained} or less"
    )
