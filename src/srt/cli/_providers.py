"""The provider a chat talks to, from the command line and the environment.

Keys are read from environment variables only: the provider's usual one, or the
one named by ``--key-env``. A key given as an argument would land in the shell's
history and in the process list. Nothing here is written to the database.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import ConfigError
from ..providers.base import Anthropic, Azure, Bedrock, OpenAI, OpenAICompatible, Provider
from ..wire.azure import AzureEndpoint

__all__ = ["DEFAULT_MODELS", "KEY_ENV", "PROVIDERS", "add_provider_options", "make_provider"]

PROVIDERS = ("openai", "responses", "azure", "anthropic", "bedrock", "compatible", "local")

#: The model used when neither --model nor $SRT_MODEL names one.
DEFAULT_MODELS = {
    "openai": "gpt-4o-mini",
    "responses": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
}

#: The environment variable each provider reads its key from by default.
KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "responses": "OPENAI_API_KEY",
    "azure": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "bedrock": "AWS_BEARER_TOKEN_BEDROCK",
    "compatible": "OPENAI_API_KEY",
}


def add_provider_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--provider",
        choices=PROVIDERS,
        help="where requests go (default: $SRT_PROVIDER, else openai); responses is "
        "OpenAI's Responses API, compatible any OpenAI-compatible server at --base-url, "
        "local a GGUF model run by llama.cpp on this machine",
    )
    p.add_argument(
        "--model",
        help="the model (default: $SRT_MODEL, else one per provider: gpt-4o-mini, "
        "claude-sonnet-4-5, ...; for azure the deployment; for local a GGUF file)",
    )
    p.add_argument(
        "--base-url",
        metavar="URL",
        help="the provider's base URL, e.g. http://127.0.0.1:8080/v1 (default: the "
        "provider's own, or $OPENAI_BASE_URL, $ANTHROPIC_BASE_URL, $AZURE_OPENAI_ENDPOINT)",
    )
    p.add_argument(
        "--key-env",
        metavar="VAR",
        help="read the API key from environment variable VAR (default: the provider's "
        "usual one, e.g. OPENAI_API_KEY). There is no option taking the key itself: "
        "it would be kept in your shell history",
    )
    p.add_argument(
        "--region",
        help="the AWS region for bedrock (default: $AWS_REGION or $AWS_DEFAULT_REGION)",
    )


def _key(args: argparse.Namespace, provider: str) -> str | None:
    var = args.key_env
    if var is None:
        return None  # the provider reads its usual variable itself
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"--key-env {var}: that environment variable is not set or empty")
    return value


def make_provider(args: argparse.Namespace) -> tuple[Provider, str]:
    """The provider and model for a chat or a prompt (``ConfigError`` if unusable)."""
    name = args.provider or os.environ.get("SRT_PROVIDER") or "openai"
    if name not in PROVIDERS:
        raise ConfigError(f"$SRT_PROVIDER={name!r} is not one of {', '.join(PROVIDERS)}")
    model = args.model or os.environ.get("SRT_MODEL") or DEFAULT_MODELS.get(name)
    key = _key(args, name)
    base_url = args.base_url
    provider: Provider
    if name in ("openai", "responses"):
        api = "chat" if name == "openai" else "responses"
        provider = OpenAI(key, base_url=base_url, api=api)
    elif name == "compatible":
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ConfigError("--provider compatible needs --base-url (or $OPENAI_BASE_URL)")
        provider = OpenAICompatible(base_url, api_key=key or os.environ.get("OPENAI_API_KEY"))
    elif name == "anthropic":
        provider = Anthropic(key, base_url=base_url)
    elif name == "azure":
        endpoint = base_url or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ConfigError("--provider azure needs --base-url (or $AZURE_OPENAI_ENDPOINT)")
        if not model:
            raise ConfigError("--provider azure needs --model, the deployment name")
        version = os.environ.get("OPENAI_API_VERSION")
        ep = AzureEndpoint(endpoint, deployment=model, api_version=version, use_v1=not version)
        provider = Azure(ep, api_key=key or os.environ.get("AZURE_OPENAI_API_KEY"))
    elif name == "bedrock":
        provider = Bedrock(region=args.region, api_key=key, endpoint_url=base_url)
    else:
        provider, model = _local(args.model)
    if not model:
        raise ConfigError(f"--provider {name} needs --model (or $SRT_MODEL)")
    return provider, model


def _local(model: str | None) -> tuple[Provider, str]:
    try:
        from ..providers.local import LocalProvider
    except ImportError as exc:  # the local provider is not part of this installation
        raise ConfigError(f"--provider local is not available here ({exc})") from None
    local: Any = LocalProvider(model)
    return local, str(local.model_name)
