"""llama.cpp on this machine: the child process srt owns and its slots.

``server.Server`` runs llama.cpp's HTTP server in a child process (``child.py``) and
drives its slot saves and restores; ``slots.Router`` routes sessions to slots by
prefix reuse and plans those saves and restores. The provider that sends requests to
the server is ``srt.providers.local.LocalProvider`` (``srt.Local``).
"""

from __future__ import annotations

from .server import INSTALL, Server, default_model, missing
from .slots import CallStats, LocalStats, Router

__all__ = ["INSTALL", "CallStats", "LocalStats", "Router", "Server", "default_model", "missing"]
