"""Minimal valid instances of the official SDKs' pydantic models, built from their
field annotations (``build``), and the members of their discriminated unions
(``members``): what ``test_wire_sdk_*`` feeds srt's decoders. The tests here check the
builder itself: every instance it makes validates against its model.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import anthropic.types as at
import openai.types.chat as oc
import openai.types.responses as orr
import pytest
from pydantic import BaseModel


def members(union: Any) -> list[type[BaseModel]]:
    """The model classes of a (possibly ``Annotated``) union type."""
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    return [m for m in typing.get_args(union) if isinstance(m, type)]


def type_of(model: type[BaseModel]) -> str:
    """The ``type`` literal a model is discriminated by."""
    return str(typing.get_args(model.model_fields["type"].annotation)[0])


def _value(tp: Any, depth: int) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _value(typing.get_args(tp)[0], depth)
    if origin is Literal:
        return typing.get_args(tp)[0]
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args:
            return None
        return _value(args[0], depth)
    if origin in (list, typing.List, tuple, typing.Sequence):  # noqa: UP006
        return []
    if origin in (dict, typing.Dict):  # noqa: UP006
        return {}
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return build(tp, depth + 1)
    if tp is str:
        return "x"
    if tp is bool:
        return False
    if tp in (int, float):
        return 0
    if tp is object or tp is Any:
        return {}
    if tp is list:
        return []
    if tp is dict:
        return {}
    raise TypeError(f"no minimal value for {tp!r}")


def build(model: type[BaseModel], depth: int = 0, /, **given: Any) -> dict[str, Any]:
    """The smallest JSON object ``model`` validates: its required fields only, each at
    the simplest value its annotation takes (``given`` overrides fields)."""
    if depth > 12:
        raise RecursionError(model)
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in given:
            out[key] = given[key]
        elif field.is_required():
            out[key] = _value(field.annotation, depth)
    out.update({k: v for k, v in given.items() if k not in out})
    return out


UNIONS = {
    "openai.ResponseStreamEvent": orr.ResponseStreamEvent,
    "openai.ResponseOutputItem": orr.ResponseOutputItem,
    "anthropic.RawMessageStreamEvent": at.RawMessageStreamEvent,
    "anthropic.ContentBlock": at.ContentBlock,
    "anthropic.RawContentBlockDelta": at.RawContentBlockDelta,
}


@pytest.mark.parametrize("union", sorted(UNIONS))
def test_every_member_builds_a_valid_instance(union: str) -> None:
    models = members(UNIONS[union])
    assert len(models) >= 5
    for model in models:
        model.model_validate(build(model))


def test_the_chat_models_build() -> None:
    for model in (oc.ChatCompletion, oc.ChatCompletionChunk, oc.ChatCompletionMessage):
        model.model_validate(build(model))
