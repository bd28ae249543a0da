"""The end of a streamed call: how many times ``Call.end_stream`` builds the stream's
response object, what one build costs, and what ``end_stream`` costs, per wire format,
for a decoded reply of 400 words in 5-character deltas (no network, no store: the
persist is left out). Best of 15 runs of 1,000 calls each, in microseconds a call.

    python bench/stream_end.py
"""

from __future__ import annotations

import time
from typing import Any

from srt._types import Reply, Usage
from srt.exchange import Call
from srt.wire import get_format

FORMATS = ("openai.chat", "anthropic.messages", "openai.responses", "bedrock.converse")


def _call(name: str, words: int = 400) -> Any:
    fmt = get_format(name)
    text = "word " * words
    reply = Reply({"role": "assistant", "content": text}, Usage(50, words, 0, 0), "m", None, None)
    chunks = [text[i : i + 5] for i in range(0, len(text), 5)]
    frames = fmt.encode_stream(fmt.encode_events(fmt.encode_reply(reply, id="r_1"), chunks=chunks))
    dec = fmt.stream_decoder("m")
    for frame in frames:
        dec.feed(frame)
    call = Call.__new__(Call)  # (only what end_stream reads of a call whose stream ended)
    call.decoder, call.fmt, call.model = dec, fmt, "m"
    call.persist = lambda reply, status, error=None: reply  # type: ignore[method-assign]
    return call


def _best(fn: Any, runs: int = 15, n: int = 1000) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    return best


def main() -> None:
    for name in FORMATS:
        call = _call(name)
        dec = call.decoder
        built = [0]
        response = dec.response

        def counted(response: Any = response, built: list[int] = built) -> Any:
            built[0] += 1
            return response()

        dec.response = counted
        call.end_stream(None)
        dec.response = response
        one, end = _best(dec.response), _best(lambda c=call: c.end_stream(None))
        print(f"{name:20} builds {built[0]}  one build {one:6.2f} us  end_stream {end:6.2f} us")


if __name__ == "__main__":
    main()
