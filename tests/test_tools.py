"""Tools from Python callables (``srt.tools``): schemas from signatures and docstrings,
arguments bound back into Python values, and the same tool in every wire format."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from typing import Annotated, Any, Literal, Optional, TypedDict

import pytest

import srt
from srt.errors import InvalidMessageError, ToolArgumentsError
from srt.tools import Tool, as_tool, definition, render_result, tool


def params(fn: Any) -> dict[str, Any]:
    return dict(as_tool(fn).definition["function"]["parameters"])


# -- schemas --------------------------------------------------------------------------------


def google(city: str, days: int = 3, unit: Literal["C", "F"] = "C") -> str:
    """Forecast for a city.

    Several days ahead, from the national service.

    Args:
        city: The city's name,
            in English.
        days: How many days.
        unit: Temperature unit.
    """
    return city


def numpy_style(a: float, b: Optional[float] = None) -> float:  # noqa: UP045 (the typing spelling)
    """Add two numbers.

    Parameters
    ----------
    a : float
        The first.
    b : float, optional
        The second.
    """
    return a + (b or 0)


def rest_style(path: str, lines: list[int]) -> str:
    """Read lines of a file.

    :param path: Where the file is.
    :param lines: Which lines, from 1.
    """
    return path


def test_google_docstring_gives_description_and_parameter_texts() -> None:
    d = as_tool(google).definition
    assert d["type"] == "function"
    fn = d["function"]
    assert fn["name"] == "google"
    assert (
        fn["description"]
        == "Forecast for a city.\n\nSeveral days ahead, from the national service."
    )
    assert fn["parameters"] == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city's name, in English."},
            "days": {"type": "integer", "description": "How many days.", "default": 3},
            "unit": {
                "type": "string",
                "enum": ["C", "F"],
                "description": "Temperature unit.",
                "default": "C",
            },
        },
        "required": ["city"],
        "additionalProperties": False,
    }


def test_numpy_and_rest_docstrings() -> None:
    p = params(numpy_style)
    assert p["properties"]["a"] == {"type": "number", "description": "The first."}
    assert p["properties"]["b"] == {
        "anyOf": [{"type": "number"}, {"type": "null"}],
        "description": "The second.",
        "default": None,
    }
    assert p["required"] == ["a"]
    q = params(rest_style)
    assert q["properties"]["path"]["description"] == "Where the file is."
    assert q["properties"]["lines"] == {
        "type": "array",
        "items": {"type": "integer"},
        "description": "Which lines, from 1.",
    }


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(TypedDict, total=False):
    """A postal address.

    Attributes:
        street: Street and number.
        zip: Postal code.
    """

    street: str
    zip: str


@dataclasses.dataclass
class Point:
    """A point.

    Attributes:
        x: Across.
        y: Up.
    """

    x: float
    y: float = 0.0
    tags: list[str] = dataclasses.field(default_factory=list)


def rich(
    where: Point,
    to: Address,
    color: Color,
    when: datetime.date,
    scores: dict[str, float],
    pair: tuple[int, str],
    many: tuple[int, ...] = (),
    labels: set[str] | None = None,
    note: Annotated[str, "Free text for the driver."] = "",
    anything: Any = None,
) -> dict[str, Any]:
    """Deliver something."""
    return {}


def test_typeddict_dataclass_enum_date_dict_tuple_set_annotated() -> None:
    p = params(rich)
    props = p["properties"]
    assert props["where"] == {
        "type": "object",
        "properties": {
            "x": {"type": "number", "description": "Across."},
            "y": {"type": "number", "description": "Up.", "default": 0.0},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["x"],
        "additionalProperties": False,
    }
    assert props["to"] == {
        "type": "object",
        "properties": {
            "street": {"type": "string", "description": "Street and number."},
            "zip": {"type": "string", "description": "Postal code."},
        },
        "additionalProperties": False,
    }
    assert props["color"] == {"type": "string", "enum": ["red", "green"]}
    assert props["when"] == {"type": "string", "format": "date"}
    assert props["scores"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["pair"] == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "minItems": 2,
        "maxItems": 2,
    }
    assert props["many"] == {"type": "array", "items": {"type": "integer"}, "default": []}
    assert props["labels"] == {
        "anyOf": [
            {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            {"type": "null"},
        ],
        "default": None,
    }
    assert props["note"] == {
        "type": "string",
        "description": "Free text for the driver.",
        "default": "",
    }
    assert props["anything"] == {"default": None}
    assert p["required"] == ["where", "to", "color", "when", "scores", "pair"]


def test_bind_builds_python_values() -> None:
    t = as_tool(rich)
    args, kwargs = t.bind(
        json.dumps(
            {
                "where": {"x": 1, "tags": ["a"]},
                "to": {"zip": "75001"},
                "color": "green",
                "when": "2026-05-01",
                "scores": {"a": 1},
                "pair": [1, "x"],
                "many": [1, 2],
                "labels": ["u", "u"],
            }
        )
    )
    assert args == []
    assert kwargs["where"] == Point(1.0, 0.0, ["a"])
    assert kwargs["to"] == {"zip": "75001"}
    assert kwargs["color"] is Color.GREEN
    assert kwargs["when"] == datetime.date(2026, 5, 1)
    assert kwargs["scores"] == {"a": 1.0}
    assert kwargs["pair"] == (1, "x")
    assert kwargs["many"] == (1, 2)
    assert kwargs["labels"] == {"u"}
    assert "note" not in kwargs  # the default applies


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"days": 2}', "missing required argument 'city'"),
        ('{"city": "x", "weather": 1}', "unexpected argument 'weather'"),
        ('{"city": 3}', "city: expected a string, got int"),
        ('{"city": "x", "days": "2"}', "days: expected an integer, got str"),
        ('{"city": "x", "days": true}', "days: expected an integer, got bool"),
        ('{"city": "x", "unit": "K"}', "unit: expected one of"),
    ],
)
def test_bad_arguments_raise_a_typed_error(arguments: str, message: str) -> None:
    with pytest.raises(ToolArgumentsError, match=message):
        as_tool(google).bind(arguments)


def test_integral_floats_and_nested_errors() -> None:
    assert as_tool(google).bind('{"city": "x", "days": 2.0}')[1]["days"] == 2
    with pytest.raises(ToolArgumentsError, match=r"where.x: expected a number, got str"):
        as_tool(rich).bind({"where": {"x": "1"}})
    with pytest.raises(ToolArgumentsError, match="where: unexpected field 'z'"):
        as_tool(rich).bind({"where": {"x": 1, "z": 2}})
    with pytest.raises(ToolArgumentsError, match="where: missing required field 'x'"):
        as_tool(rich).bind({"where": {}})


def test_decorator_forms_and_idempotence() -> None:
    @tool
    def a(x: int) -> int:
        """A."""
        return x

    @tool(name="bee", description="Custom.", idempotent=True)
    def b(x: int) -> int:
        return x

    assert isinstance(a, Tool) and a(2) == 2 and not a.idempotent
    assert b.name == "bee" and b.idempotent
    assert b.definition["function"]["description"] == "Custom."
    assert as_tool(a) is a
    assert "idempotent" in repr(b)


def test_as_tool_caches_per_function_and_handles_other_callables() -> None:
    assert as_tool(google) is as_tool(google)

    class Adder:
        def __call__(self, a: int, b: int = 1) -> int:
            """Add."""
            return a + b

    t = as_tool(Adder())
    assert t.name == "Adder"
    assert params(Adder())["required"] == ["a"]

    async def later(n: int) -> int:
        return n

    assert as_tool(later).is_async


def positional(a: int, /, b: int) -> int:
    return a - b


def test_positional_only_parameters_bind_positionally() -> None:
    args, kwargs = as_tool(positional).bind({"a": 5, "b": 2})
    assert positional(*args, **kwargs) == 3


def varargs(*names: str) -> str:
    return ""


class Opaque:
    pass


def opaque(thing: Opaque) -> None:
    pass


def int_keys(m: dict[int, str]) -> None:
    pass


def unresolved(x: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
    pass


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (varargs, r"\*args and \*\*kwargs"),
        (opaque, "cannot describe"),
        (int_keys, "JSON object keys are strings"),
        (unresolved, "cannot read its signature"),
        (42, "must be a callable or a definition dict"),
    ],
)
def test_tools_that_cannot_be_described_raise_invalid_message_error(fn: Any, message: str) -> None:
    with pytest.raises(InvalidMessageError, match=message):
        definition(fn)


def test_render_result() -> None:
    assert render_result("plain") == "plain"
    assert render_result(None) == "null"
    assert json.loads(render_result({"p": Point(1, 2), "c": Color.RED, "s": {1}})) == {
        "p": {"x": 1, "y": 2, "tags": []},
        "c": "red",
        "s": [1],
    }


# -- every wire format ------------------------------------------------------------------------

DICT_TOOL = {
    "type": "function",
    "function": {
        "name": "google",
        "description": "Forecast for a city.\n\nSeveral days ahead, from the national service.",
        "parameters": params(google),
    },
}


@pytest.mark.parametrize(
    ("fmt", "model"),
    [
        ("openai.chat", "gpt-4o"),
        ("openai.responses", "gpt-4o"),
        ("azure.chat", "gpt-4o"),
        ("anthropic.messages", "claude-sonnet-4-6"),
        ("bedrock.converse", "anthropic.claude-sonnet-4-6"),
    ],
)
def test_a_function_renders_as_its_definition_in_every_format(
    rt: srt.Runtime, fmt: str, model: str
) -> None:
    s = rt.session("t")
    s.append({"role": "user", "content": "weather?"})
    from_fn = s.request(fmt, model=model, tools=[google])
    from_dict = s.request(fmt, model=model, tools=[DICT_TOOL])
    assert from_fn == from_dict
    body = json.loads(from_fn)
    schema = params(google)
    if fmt in ("openai.chat", "azure.chat"):
        assert body["tools"][0]["function"]["parameters"] == schema
    elif fmt == "openai.responses":
        assert body["tools"][0]["name"] == "google"
        assert body["tools"][0]["parameters"] == schema
    elif fmt == "anthropic.messages":
        assert body["tools"][0]["input_schema"] == schema
    else:
        assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"] == schema
