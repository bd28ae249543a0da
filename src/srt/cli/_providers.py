"""The provider a chat talks to, from the command line and the environment.

Keys are read from environment variables only: the provider's usual one, or the
one named by ``--key-env``. A key given as an argument would land in the shell's
history and in the process list. Nothing here is written to the database.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING

from .. import providers
from ..errors import ConfigError
from ._common import nonempty

if TYPE_CHECKING:
    from ..providers import Provider

__all__ = ["add_provider_options", "make_provider"]


def _provider_name(value: str) -> str:
    """``--provider``'s check, made only when it is given: the names of plug-ins come from
    a scan of every installed package, which every other command would pay for as a
    ``choices`` list."""
    known = providers.names()
    if value not in known:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} (choose from {', '.join(known)})"
        )
    return value


def add_provider_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--provider",
        type=_provider_name,
        metavar="NAME",
        help=f"where requests go: {', '.join(providers.PROVIDERS)} or a plug-in's name "
        "(default: $SRT_PROVIDER, else openai); responses is "
        "OpenAI's Responses API, compatible any OpenAI-compatible server at --base-url, "
        "local a GGUF model run by llama.cpp on this machine",
    )
    p.add_argument(
        "--model",
        type=nonempty,
        help="the model (default: $SRT_MODEL, else one per provider: gpt-4o-mini, "
        "claude-sonnet-4-5, ...; for azure the deployment; for local a GGUF file)",
    )
    p.add_argument(
        "--base-url",
        type=nonempty,
        metavar="URL",
        help="the provider's base URL, e.g. http://127.0.0.1:8080/v1 (default: the "
        "provider's own, or $OPENAI_BASE_URL, $ANTHROPIC_BASE_URL, $AZURE_OPENAI_ENDPOINT)",
    )
    p.add_argument(
        "--key-env",
        type=nonempty,
        metavar="VAR",
        help="read the API key from environment variable VAR (default: the provider's "
        "usual one, e.g. OPENAI_API_KEY). There is no option taking the key itself: "
        "it would be kept in your shell history",
    )
    p.add_argument(
        "--region",
        type=nonempty,
        help="the AWS region for bedrock (default: $AWS_REGION or $AWS_DEFAULT_REGION)",
    )


def _key(args: argparse.Namespace) -> str | None:
    var = args.key_env
    if var is None:
        return None  # the provider reads its usual variable itself
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"--key-env {var}: that environment variable is not set or empty")
    return value


#: A provider's configuration errors name its Python arguments (``pass api_key= or set
#: OPENAI_API_KEY``): said to someone at the command line, each names the option or
#: variable that sets it there instead. The provider layer keeps its wording for Python.
_COMMAND_LINE_WORDS = (
    (
        re.compile(r"pass api_key= or set (\w+)"),
        r"set \1, or name the variable holding it with --key-env VAR",
    ),
    (re.compile(r"\(api_key= or (\w+)\)"), r"(\1, or --key-env VAR)"),
    (re.compile(r"\(credentials= or "), "("),
    (re.compile(r"pass region= or set (\w+)"), r"pass --region or set \1"),
    # (the Azure endpoint's check: the command line passes a key only, never a token)
    (
        re.compile(r"^pass exactly one of api_key and bearer_token$"),
        "Azure OpenAI needs an API key: set AZURE_OPENAI_API_KEY, or name the variable "
        "holding it with --key-env VAR",
    ),
)


def _command_line_words(message: str) -> str:
    for pattern, words in _COMMAND_LINE_WORDS:
        message = pattern.sub(words, message)
    return message


def make_provider(args: argparse.Namespace) -> tuple[Provider, str]:
    """The provider and model for a chat or a prompt (``ConfigError`` if unusable), built
    by the provider the registry knows under ``--provider`` (``srt.providers``)."""
    name = args.provider or os.environ.get("SRT_PROVIDER") or "openai"
    known = providers.names()
    if name not in known:
        raise ConfigError(f"$SRT_PROVIDER={name!r} is not one of {', '.join(known)}")
    options = providers.Options(
        model=args.model or os.environ.get("SRT_MODEL"),
        model_flag=args.model,
        key=_key(args),
        base_url=args.base_url,
        region=args.region,
    )
    build = providers.factory(name)
    try:
        provider, model = build(options)
    except ConfigError as exc:
        raise ConfigError(_command_line_words(str(exc))) from None
    if not model:
        raise ConfigError(f"--provider {name} needs --model (or $SRT_MODEL)")
    return provider, model
