"""The ``local`` provider's counters: one call's (``CallStats``) and the totals
(``LocalStats``), as ``slots.Router`` records them from llama.cpp's replies."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CallStats", "LocalStats"]


@dataclass(frozen=True)
class CallStats:
    """One call's counters, as llama.cpp's server reported them.

    ``prompt_tokens`` is the whole prompt, ``cache_n`` the tokens reused from the
    slot (``timings.cache_n``, equal to ``usage.prompt_tokens_details.cached_tokens``)
    and ``prompt_n`` the tokens actually evaluated (``timings.prompt_n``).
    ``restored_tokens`` were loaded from a saved state right before the call.
    """

    session: str | None
    slot: int | None
    route: str
    prompt_tokens: int
    cached_tokens: int
    cache_n: int
    prompt_n: int
    predicted_n: int
    prompt_ms: float
    predicted_ms: float
    restored_tokens: int = 0


@dataclass(frozen=True)
class LocalStats:
    """Totals over the calls a ``LocalProvider`` has made (``provider.stats()``)."""

    requests: int = 0
    prompt_tokens: int = 0
    cache_n: int = 0
    prompt_n: int = 0
    predicted_n: int = 0
    prompt_ms: float = 0.0
    predicted_ms: float = 0.0
    restores: int = 0
    restored_tokens: int = 0
    restore_failures: int = 0
    saves: int = 0
    saved_tokens: int = 0
    routes: dict[str, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        """Share of prompt tokens reused rather than evaluated."""
        return self.cache_n / self.prompt_tokens if self.prompt_tokens else 0.0
