"""The test server's command line (``python -m srt.testing``, or ``python -m
srt.testing.server``): the fake providers of ``ProviderServer`` in the foreground, until
Ctrl-C or SIGTERM. The first line printed is the server's base URL. The class is given by
the caller (``__main__`` or ``server`` itself), so this module never imports ``server``."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ._window import IMITATED

__all__ = ["main", "parser"]


def _window(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of tokens: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 token: {n}")
    return n


def parser(prog: str = "python -m srt.testing") -> argparse.ArgumentParser:
    """The command line's options, each named as ``ProviderServer``'s argument."""
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Serve fake OpenAI, Azure, Anthropic and Bedrock endpoints on loopback.",
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    ap.add_argument("--openai-ttl", type=float, default=600.0, help="OpenAI cache idle TTL, s")
    ap.add_argument("--api-key", default=None, help="accept only this key")
    ap.add_argument(
        "--context-window",
        type=_window,
        default=None,
        metavar="TOKENS",
        help="refuse prompts over this many tokens with each provider's own error "
        "(default: no limit)",
    )
    ap.add_argument(
        "--imitate",
        choices=sorted(IMITATED),
        default="openai",
        help="whose refusal of a prompt over --context-window the OpenAI-shaped endpoints "
        "answer with: OpenAI's (and Azure's) context_length_exceeded, or an "
        "OpenAI-compatible server's: llama.cpp's exceed_context_size_error or vLLM's, "
        "which also take any image OpenAI refuses (default: openai)",
    )
    ap.add_argument(
        "--no-responses-state",
        dest="responses_state",
        action="store_false",
        help="keep no responses and refuse previous_response_id with a 400, as llama.cpp's "
        "server does",
    )
    ap.add_argument(
        "--azure-deployment",
        dest="azure_deployments",
        type=_deployment,
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="an Azure deployment and the model it runs, which its replies name (repeatable; "
        "a deployment not given runs the model it is named for)",
    )
    return ap


def _deployment(text: str) -> tuple[str, str]:
    name, _, model = text.partition("=")
    if not (name and model):
        raise argparse.ArgumentTypeError(f"expected NAME=MODEL, got {text!r}")
    return name, model


def main(
    server: Callable[..., Any],
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m srt.testing",
) -> int:
    """Serve a ``server`` (the ``ProviderServer`` class) made from the command line's
    options until Ctrl-C or SIGTERM."""
    args = parser(prog).parse_args(argv)
    srv = server(
        args.host,
        args.port,
        openai_ttl_s=args.openai_ttl,
        api_key=args.api_key,
        context_window=args.context_window,
        imitate=args.imitate,
        responses_state=args.responses_state,
        azure_deployments=dict(args.azure_deployments),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(srv.url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()
    return 0
