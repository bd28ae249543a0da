"""Common request parameters (the OpenAI Responses names) in each wire format's own words.

``translate(format, CommonParams(...))`` gives the body parameters for ``Session.send``:
``max_output_tokens`` becomes ``max_completion_tokens`` (OpenAI Chat; ``max_tokens`` for
OpenAI-compatible servers), ``max_tokens`` (Anthropic) or ``inferenceConfig.maxTokens``
(Bedrock); ``tool_choice`` and ``parallel_tool_calls`` take each API's shape (an
``allowed_tools`` choice, which Anthropic and Bedrock have no form for, is its ``mode``
there, with only the tools it allows sent: ``offered``; Bedrock's is ``toolChoice``,
which ``bedrock.converse``'s envelope puts in ``toolConfig``, and it has no ``none``); ``user`` and
``safety_identifier`` go to OpenAI as they are and to Anthropic as ``metadata.user_id``
(Bedrock has no field for them); ``text.verbosity`` is Chat's ``verbosity``, and a
reasoning summary is Responses' alone. A
parameter a format cannot express raises ``UnsupportedFeatureError`` rather than being
dropped. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UnsupportedFeatureError
from .base import WireFormat

__all__ = ["CommonParams", "offered", "translate"]


@dataclass(frozen=True)
class CommonParams:
    """Request parameters named as in the OpenAI Responses API (``None``: not set)."""

    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    service_tier: str | None = None
    prompt_cache_retention: str | None = None
    user: str | None = None
    safety_identifier: str | None = None


def _openai(fmt: WireFormat, p: CommonParams, compatible: bool) -> dict[str, Any]:
    responses = fmt.name.endswith(".responses")
    out: dict[str, Any] = {}
    if p.max_output_tokens is not None:
        key = (
            "max_output_tokens"
            if responses
            else "max_tokens"
            if compatible
            else "max_completion_tokens"
        )
        out[key] = p.max_output_tokens
    for key in ("temperature", "top_p", "parallel_tool_calls", "service_tier"):
        value = getattr(p, key)
        if value is not None:
            out[key] = value
    if not compatible:  # (an OpenAI-compatible server may refuse what it does not know)
        for key in ("prompt_cache_retention", "user", "safety_identifier"):
            value = getattr(p, key)
            if value is not None:
                out[key] = value
    choice = p.tool_choice
    if choice is not None:
        if isinstance(choice, dict) and not responses:
            choice = _chat_choice(choice)
        out["tool_choice"] = choice
    fmt_spec = (p.text or {}).get("format")
    verbosity = (p.text or {}).get("verbosity")
    if responses and (verbosity is not None or fmt_spec not in (None, {"type": "text"})):
        out["text"] = {k: v for k, v in (p.text or {}).items() if v is not None}
    elif verbosity is not None:
        out["verbosity"] = verbosity  # (Chat's own parameter)
    if fmt_spec is not None and fmt_spec.get("type") != "text" and not responses:
        if fmt_spec.get("type") == "json_object":
            out["response_format"] = {"type": "json_object"}
        else:
            schema = {k: v for k, v in fmt_spec.items() if k != "type"}
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
    if p.reasoning:
        if responses:
            out["reasoning"] = p.reasoning
        else:
            for key in ("summary", "generate_summary"):  # Chat's reasoning has no summary
                if p.reasoning.get(key) is not None:
                    feature = f"reasoning.{key} {p.reasoning[key]!r}"
                    raise UnsupportedFeatureError(fmt.name, feature)
            if p.reasoning.get("effort") is not None:
                out["reasoning_effort"] = p.reasoning["effort"]
    return out


def _chat_choice(choice: dict[str, Any]) -> dict[str, Any]:
    """A Responses ``tool_choice`` object in Chat's words: a function by name, or the
    allowed tools (``ChatCompletionAllowedToolChoiceParam``)."""
    if choice.get("type") == "allowed_tools":
        named = [{"type": "function", "function": {"name": t["name"]}} for t in choice["tools"]]
        return {"type": "allowed_tools", "allowed_tools": {"mode": choice["mode"], "tools": named}}
    return {"type": "function", "function": {"name": choice["name"]}}


def _allowed(choice: Any) -> bool:
    return isinstance(choice, dict) and choice.get("type") == "allowed_tools"


def _allowed_mode(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """Where a format has no allowed-tools form (Anthropic, Bedrock): its ``mode``, the
    tools it allows being all those sent (``offered``)."""
    return str(choice["mode"]) if _allowed(choice) else choice  # type: ignore[index]


def offered(fmt: WireFormat, tool_choice: Any, tools: Sequence[Any]) -> list[Any]:
    """The tools sent to ``fmt``: all of ``tools``; but to a format with no allowed-tools
    form (Anthropic, Bedrock), an ``allowed_tools`` choice sends only those it names, in
    ``tools``' order (then its ``mode`` is the choice: ``translate``). ``tools`` may be
    written as Responses writes them or as Chat does (``/v1/chat/completions``)."""
    if fmt.provider not in ("anthropic", "bedrock") or not _allowed(tool_choice):
        return list(tools)
    names = {t["name"] for t in tool_choice["tools"]}
    return [t for t in tools if _tool_name(t) in names]


def _tool_name(tool: Any) -> Any:
    """A function tool's name, in Responses' form (``name``) or Chat's (``function.name``)."""
    fn = tool.get("function")
    return fn.get("name") if isinstance(fn, dict) else tool.get("name")


def _unsupported_text(fmt: WireFormat, p: CommonParams) -> None:
    spec = (p.text or {}).get("format")
    if spec is not None and spec.get("type") != "text":
        raise UnsupportedFeatureError(fmt.name, f"text.format {spec.get('type')!r}")
    verbosity = (p.text or {}).get("verbosity")
    if verbosity not in (None, "medium"):  # (no such control: OpenAI's default is served)
        raise UnsupportedFeatureError(fmt.name, f"text.verbosity {verbosity!r}")


#: The service tiers every upstream serves: what it serves by default.
_ANY_TIER = (None, "auto", "default")


def _unsupported_other(fmt: WireFormat, p: CommonParams) -> None:
    """What neither Anthropic's nor Bedrock's API can express: structured outputs,
    a reasoning effort or summary, a service tier other than the default."""
    _unsupported_text(fmt, p)
    reasoning = p.reasoning or {}
    for key in ("effort", "summary", "generate_summary"):
        if reasoning.get(key) is not None:
            raise UnsupportedFeatureError(fmt.name, f"reasoning.{key} {reasoning[key]!r}")
    if p.service_tier not in _ANY_TIER:
        raise UnsupportedFeatureError(fmt.name, f"service_tier {p.service_tier!r}")


def _at_most_one(fmt: WireFormat, temperature: float) -> float:
    """Anthropic's and Bedrock's temperature runs from 0 to 1, OpenAI's to 2: above 1 is
    refused, not capped (1.5 is no request for 1)."""
    if temperature > 1.0:
        raise UnsupportedFeatureError(fmt.name, f"temperature {temperature!r} (at most 1 here)")
    return temperature


def _anthropic(fmt: WireFormat, p: CommonParams) -> dict[str, Any]:
    _unsupported_other(fmt, p)
    out: dict[str, Any] = {}
    if p.max_output_tokens is not None:
        out["max_tokens"] = p.max_output_tokens
    if p.temperature is not None:
        out["temperature"] = _at_most_one(fmt, p.temperature)
    if p.top_p is not None:
        out["top_p"] = p.top_p
    choice = _allowed_mode(p.tool_choice)
    spec: dict[str, Any] | None = None
    if choice == "auto":
        spec = {"type": "auto"}
    elif choice == "required":
        spec = {"type": "any"}
    elif choice == "none":
        spec = {"type": "none"}
    elif isinstance(choice, dict):
        spec = {"type": "tool", "name": choice["name"]}
    if p.parallel_tool_calls is False and choice != "none":
        spec = {**(spec or {"type": "auto"}), "disable_parallel_tool_use": True}
    if spec is not None:
        out["tool_choice"] = spec
    who = p.safety_identifier or p.user  # Anthropic's abuse-detection identifier
    if who is not None:
        out["metadata"] = {"user_id": who}
    return out


def _bedrock_choice(fmt: WireFormat, p: CommonParams) -> dict[str, Any] | None:
    """Converse's ``toolChoice`` (``None``: ``auto``, its default, which is not sent: a
    model without tool choice, such as Llama's, then takes the request)."""
    choice = _allowed_mode(p.tool_choice)
    if choice == "required":
        return {"any": {}}
    if isinstance(choice, dict):
        return {"tool": {"name": choice["name"]}}
    if choice == "none":
        raise UnsupportedFeatureError(
            fmt.name, "tool_choice 'none' (Converse has no 'none': send no tools instead)"
        )
    if choice not in (None, "auto"):
        raise UnsupportedFeatureError(fmt.name, f"tool_choice {choice!r}")
    return None


def _bedrock(fmt: WireFormat, p: CommonParams) -> dict[str, Any]:
    _unsupported_other(fmt, p)
    choice = _bedrock_choice(fmt, p)
    if p.parallel_tool_calls is False:  # Converse has no switch for it
        raise UnsupportedFeatureError(fmt.name, "parallel_tool_calls False")
    out: dict[str, Any] = {} if choice is None else {"toolChoice": choice}
    config: dict[str, Any] = {}
    if p.max_output_tokens is not None:
        config["maxTokens"] = p.max_output_tokens
    if p.temperature is not None:
        config["temperature"] = _at_most_one(fmt, p.temperature)
    if p.top_p is not None:
        config["topP"] = p.top_p
    if config:
        out["inferenceConfig"] = config
    return out


def translate(fmt: WireFormat, params: CommonParams, *, compatible: bool = False) -> dict[str, Any]:
    """``params`` as body parameters of ``fmt`` (``compatible``: an OpenAI-compatible
    server, which takes ``max_tokens`` and no ``prompt_cache_retention``)."""
    if fmt.provider == "anthropic":
        return _anthropic(fmt, params)
    if fmt.provider == "bedrock":
        return _bedrock(fmt, params)
    return _openai(fmt, params, compatible)
