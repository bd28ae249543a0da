"""``python -m srt.bench``: srt against naive baselines, measured in the same run."""

from .chat import ChatResult, run_chat

__all__ = ["ChatResult", "run_chat"]
