"""``python -m srt.testing``: ``ProviderServer`` in the foreground (see ``_cli``)."""

from __future__ import annotations

from ._cli import main
from .server import ProviderServer

if __name__ == "__main__":
    raise SystemExit(main(ProviderServer))
