"""``python -m srt.bench``: srt against real baselines, measured in the same run."""

from .chat import ChatResult, run_chat

__all__ = ["ChatResult", "run_chat"]
