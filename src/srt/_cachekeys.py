"""The prompt-cache key a request sends, in the scope ``CachePolicy(key=...)`` names.

For a format whose ``CacheRules.key_param`` names one (OpenAI's ``prompt_cache_key``):

* ``"root"`` (the default): ``"srt-"`` and the hex of the first message's prefix hash
  (``Builder.cache_key``, made once per root), so every session and fork that starts
  with the same message sends the same key and routes to the same cache;
* ``"session"``: the root's prefix hash linked, as a message would be, to the store's
  digest of a text naming the session's id in the store and the store's random id. It
  tells no more about the session's name or messages than the root key does (the text
  is no canonical message, which is JSON, so the key is never a node's prefix hash); it
  is the same on every handle and after a restart, a rename keeps it, and a fork, a
  session of its own, gets its own;
* ``None``: no key.

A ``prompt_cache_key`` request parameter is sent instead of any of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _core
from ._hashing import Hashing

if TYPE_CHECKING:
    from ._chain import Chain
    from ._shared import Shared
    from .cache import CachePolicy
    from .wire.base import WireFormat

__all__ = ["sent_key", "session_cache_key"]

#: What a session's key digests: its id in the store, and the store's random id.
_SESSION_TEXT = b"srt: the prompt-cache key of session %d of store %s"


def session_cache_key(hashing: Hashing, root_hash: bytes, store_id: str, session: int) -> str:
    """The key of ``CachePolicy(key="session")`` for session id ``session`` whose first
    message hashes to ``root_hash``, in a store hashing with ``hashing``."""
    text = hashing.digest(_SESSION_TEXT % (session, store_id.encode()))
    return "srt-" + hashing.chain(hashing.chain(_core.ROOT, root_hash), text).hex()


def sent_key(
    shared: Shared,
    chain: Chain,
    root: str | None,
    fmt: WireFormat,
    cache: object,
    policy: CachePolicy,
    params: dict[str, Any] | None,
) -> str | None:
    """The key (``fmt.cache.key_param``) a request on ``chain`` sends, ``root`` being its
    root key: none without ``cache`` or ``key_param``; the caller's (``None`` when it is
    not a str: srt then adds none); else the one of ``policy.key``'s scope."""
    param = fmt.cache.key_param
    if not cache or param is None:
        return None
    if params and param in params:
        given = params[param]
        return given if type(given) is str else None
    scope = policy.key
    if scope == "root":
        return root
    hashes = chain.hashes
    if scope is None or not hashes:
        return None
    sid = chain.id
    key = shared.session_keys.get((sid, hashes[0]))
    if key is None:
        store = shared.store
        key = session_cache_key(store.hashing, hashes[0], store.store_id, sid)
        shared.session_keys[(sid, hashes[0])] = key
    return key
