"""The PostgreSQL engine: the Store protocol on a PostgreSQL database through psycopg 3
and ``psycopg_pool`` (``pip install 'stateful-runtime[postgres]'``).

    rt = srt.Runtime("postgresql://app@db.internal/chats")             # a pool of its own
    rt = srt.Runtime(store=PostgresStore(pool=my_pool, schema="srt"))   # a caller's pool

See ``store.PostgresStore`` for the URL's options, ``schema`` for the tables and the
one-statement append, ``pool`` for connections and retries, ``errors`` for how
psycopg's exceptions become srt's, and ``maintenance`` for gc, verify and search.
"""

from __future__ import annotations

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # installed without the extra (or psycopg without a libpq)
    from ...errors import ConfigError

    raise ConfigError(
        f"PostgreSQL stores need psycopg 3 and psycopg_pool ({exc}): "
        "pip install 'stateful-runtime[postgres]'"
    ) from exc

from .store import PostgresStore

__all__ = ["PostgresStore"]
