"""Tools from Python callables: a JSON schema from the signature and the docstring.

``tool(fn)`` (or ``@tool``, ``@tool(idempotent=True)``) makes a ``Tool``; a plain
function passed where a tool definition is expected is made into one the same way.

* The schema comes from the type hints: ``str``, ``int``, ``float``, ``bool``,
  ``None``, ``Any``, ``Literal[...]``, ``Enum`` subclasses, ``Optional[X]`` and other
  unions, ``list``/``Sequence``/``set``/``tuple``, ``dict[str, X]``, ``TypedDict``
  and dataclass types (nested as deep as needed), ``datetime``/``date``, and
  ``Annotated[X, "description"]``. A parameter without a default is required; a
  default that JSON can hold is given as ``default``.
* Descriptions come from the docstring, in Google, NumPy or reST style (parsed by
  ``docstring_parser``): the summary and body describe the tool, each ``Args:`` /
  ``Parameters`` / ``:param:`` entry its parameter, and the ``Attributes:`` of a
  dataclass or ``TypedDict`` its fields.
* ``Tool.bind(arguments)`` turns the model's JSON arguments into the call's
  arguments: dataclasses are built, enums, dates and tuples converted, and anything
  that does not fit the schema raises ``ToolArgumentsError`` (the task loop gives
  the model that message, so it can correct its call).

Nothing here touches the store or the network; ``srt.tasks`` runs the tools.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import inspect
import json
import re
import types
import typing
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Union, overload

import docstring_parser

from .errors import InvalidMessageError, ToolArgumentsError

__all__ = ["Tool", "as_tool", "definition", "render_result", "tool"]

_MAX_DEPTH = 16
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SEQUENCES = (list, Sequence, Iterable, typing.List, typing.Sequence, typing.Iterable)  # noqa: UP006
_SETS = (set, frozenset, typing.Set, typing.FrozenSet, typing.AbstractSet)  # noqa: UP006
_MAPPINGS = (dict, Mapping, typing.Dict, typing.Mapping)  # noqa: UP006


def _bad(msg: str) -> InvalidMessageError:
    return InvalidMessageError(msg)


def _docs(obj: Any) -> docstring_parser.Docstring | None:
    text = inspect.getdoc(obj)
    if not text:
        return None
    try:
        return docstring_parser.parse(text)
    except docstring_parser.ParseError:
        return None


def _param_docs(doc: docstring_parser.Docstring | None) -> dict[str, str]:
    if doc is None:
        return {}
    return {p.arg_name: " ".join(p.description.split()) for p in doc.params if p.description}


def _hints(cls: Any, where: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # a NameError or TypeError from a string annotation
        raise _bad(f"{where}: cannot resolve the type hints of {cls!r} ({exc})") from None


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and typing.is_typeddict(tp)


def _json_default(value: Any) -> tuple[bool, Any]:
    """``(True, value as JSON)`` if a parameter default can go into the schema."""
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        return True, json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return False, None


class _Schema:
    """Type hints -> JSON schema, for one tool (``where`` names it in errors)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def of(self, tp: Any, where: str, depth: int = 0) -> dict[str, Any]:
        if depth > _MAX_DEPTH:
            raise _bad(f"{where}: types nested deeper than {_MAX_DEPTH} levels (recursive?)")
        if tp is inspect.Parameter.empty or tp is Any or tp is object:
            return {}
        if tp is None or tp is type(None):
            return {"type": "null"}
        if tp in _PRIMITIVES:
            return {"type": _PRIMITIVES[tp]}
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        out: dict[str, Any]
        if origin is typing.Annotated:
            out = self.of(args[0], where, depth + 1)
            text = next((a for a in args[1:] if isinstance(a, str)), None)
            return {**out, "description": text} if text else out
        if origin is Literal:
            values = [a.value if isinstance(a, enum.Enum) else a for a in args]
            return {**_common_type(values), "enum": values}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            values = [m.value for m in tp]
            return {**_common_type(values), "enum": values}
        if origin is Union or origin is types.UnionType:
            arms = [self.of(a, where, depth + 1) for a in args]
            return {"anyOf": arms}
        if tp is datetime.datetime:
            return {"type": "string", "format": "date-time"}
        if tp is datetime.date:
            return {"type": "string", "format": "date"}
        if tp in _SEQUENCES or origin in _SEQUENCES or tp in _SETS or origin in _SETS:
            out = {"type": "array"}
            if args:
                out["items"] = self.of(args[0], where, depth + 1)
            if tp in _SETS or origin in _SETS:
                out["uniqueItems"] = True
            return out
        if tp is tuple or origin is tuple:
            if not args or (len(args) == 2 and args[1] is Ellipsis):
                out = {"type": "array"}
                if args:
                    out["items"] = self.of(args[0], where, depth + 1)
                return out
            items = [self.of(a, where, depth + 1) for a in args]
            return {
                "type": "array",
                "prefixItems": items,
                "minItems": len(items),
                "maxItems": len(items),
            }
        if tp in _MAPPINGS or origin in _MAPPINGS:
            if args and args[0] is not str:
                raise _bad(f"{where}: JSON object keys are strings, not {args[0]!r}")
            out = {"type": "object"}
            if len(args) == 2:
                out["additionalProperties"] = self.of(args[1], where, depth + 1)
            return out
        if _is_typeddict(tp):
            hints = _hints(tp, where)
            required = [k for k in hints if k in tp.__required_keys__]
            return self._object(tp, hints, required, {}, where, depth)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            hints = _hints(tp, where)
            fields = [f for f in dataclasses.fields(tp) if f.init]
            required = [
                f.name
                for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
            hints = {f.name: hints.get(f.name, Any) for f in fields}
            return self._object(tp, hints, required, defaults, where, depth)
        raise _bad(
            f"{where}: cannot describe {tp!r} in JSON schema; use str, int, float, bool, "
            "Literal, an Enum, list, dict, a TypedDict or a dataclass"
        )

    def _object(
        self,
        cls: Any,
        hints: Mapping[str, Any],
        required: list[str],
        defaults: Mapping[str, Any],
        where: str,
        depth: int,
    ) -> dict[str, Any]:
        docs = _param_docs(_docs(cls))
        props: dict[str, Any] = {}
        for name, hint in hints.items():
            prop = self.of(hint, f"{where}.{name}", depth + 1)
            if name in docs and "description" not in prop:
                prop = {**prop, "description": docs[name]}
            if name in defaults:
                ok, value = _json_default(defaults[name])
                if ok:
                    prop = {**prop, "default": value}
            props[name] = prop
        out: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            out["required"] = required
        out["additionalProperties"] = False
        return out


def _common_type(values: list[Any]) -> dict[str, Any]:
    kinds = {_PRIMITIVES.get(type(v)) if v is not None else "null" for v in values}
    if len(kinds) == 1 and None not in kinds:
        return {"type": kinds.pop()}
    return {}


# -- arguments --------------------------------------------------------------------------------


def _fail(where: str, expected: str, value: Any) -> ToolArgumentsError:
    got = "null" if value is None else type(value).__name__
    return ToolArgumentsError(f"{where}: expected {expected}, got {got}")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` (decoded JSON) as the Python value ``tp`` describes."""
    if tp is inspect.Parameter.empty or tp is Any or tp is object:
        return value
    if tp is None or tp is type(None):
        if value is not None:
            raise _fail(where, "null", value)
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(where, "a boolean", value)
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(where, "an integer", value)
        return value
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _fail(where, "a number", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(where, "a string", value)
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _coerce(value, args[0], where)
    if origin is Literal:
        for a in args:
            if (a.value if isinstance(a, enum.Enum) else a) == value and type(value) is type(
                a.value if isinstance(a, enum.Enum) else a
            ):
                return a
        raise ToolArgumentsError(f"{where}: expected one of {list(args)!r}")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = [m.value for m in tp]
            raise ToolArgumentsError(f"{where}: expected one of {allowed!r}") from None
    if origin is Union or origin is types.UnionType:
        errors = []
        for arm in sorted(args, key=lambda a: a is not type(None) if value is None else 0):
            try:
                return _coerce(value, arm, where)
            except ToolArgumentsError as exc:
                errors.append(str(exc))
        raise ToolArgumentsError(errors[0] if len(errors) == 1 else f"{where}: no type fits")
    if tp in (datetime.datetime, datetime.date):
        if not isinstance(value, str):
            raise _fail(where, "an ISO 8601 date string", value)
        try:
            return tp.fromisoformat(value)
        except ValueError:
            raise ToolArgumentsError(f"{where}: not an ISO 8601 date: {value[:40]!r}") from None
    seq = tp in _SEQUENCES or origin in _SEQUENCES
    sets = tp in _SETS or origin in _SETS
    if seq or sets or tp is tuple or origin is tuple:
        if not isinstance(value, list):
            raise _fail(where, "an array", value)
        if (tp is tuple or origin is tuple) and args and not (len(args) == 2 and args[1] is ...):
            if len(value) != len(args):
                raise ToolArgumentsError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(
                _coerce(v, a, f"{where}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        if sets:
            return frozenset(items) if (tp is frozenset or origin is frozenset) else set(items)
        return tuple(items) if (tp is tuple or origin is tuple) else items
    if tp in _MAPPINGS or origin in _MAPPINGS:
        if not isinstance(value, dict):
            raise _fail(where, "an object", value)
        inner = args[1] if len(args) == 2 else Any
        return {k: _coerce(v, inner, f"{where}.{k}") for k, v in value.items()}
    if _is_typeddict(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        return _fields(value, hints, set(tp.__required_keys__), where)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = typing.get_type_hints(tp, include_extras=True)
        fields = [f for f in dataclasses.fields(tp) if f.init]
        required = {
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        kw = _fields(value, {f.name: hints.get(f.name, Any) for f in fields}, required, where)
        return tp(**kw)
    return value


def _fields(value: Any, hints: Mapping[str, Any], required: set[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "an object", value)
    unknown = sorted(set(value) - set(hints))
    if unknown:
        raise ToolArgumentsError(f"{where}: unexpected field {unknown[0]!r}")
    missing = sorted(required - set(value))
    if missing:
        raise ToolArgumentsError(f"{where}: missing required field {missing[0]!r}")
    return {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in value.items()}


# -- the Tool ---------------------------------------------------------------------------------


class Tool:
    """A Python callable the model may call, with its JSON-schema definition.

    ``name`` defaults to the function's name, ``description`` to its docstring.
    ``idempotent=True`` says that running it twice does no harm: a task resumed
    after a crash re-runs such a tool if it started but its result was not saved
    (a tool that is not idempotent is never re-run; see ``srt.tasks``).
    Calling the ``Tool`` calls the function.
    """

    __slots__ = ("__weakref__", "_params", "definition", "fn", "idempotent", "is_async", "name")

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        idempotent: bool = False,
    ) -> None:
        if not callable(fn):
            raise _bad(f"a tool must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        if not _NAME.fullmatch(self.name):
            # (what OpenAI, Anthropic and Bedrock all take; a lambda is "<lambda>")
            raise _bad(
                f"tool name {self.name!r} must be 1 to 64 letters, digits, '_' or '-': "
                "name it with srt.tool(fn, name=...)"
            )
        self.idempotent = bool(idempotent)
        target = getattr(fn, "__call__", fn) if not inspect.isroutine(fn) else fn  # noqa: B004
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(target)
        where = f"tool {self.name!r}"
        try:
            sig = inspect.signature(fn, eval_str=True)
        except (NameError, TypeError, ValueError) as exc:
            raise _bad(f"{where}: cannot read its signature ({exc})") from None
        doc = _docs(fn)
        docs = _param_docs(doc)
        schema = _Schema(where)
        props: dict[str, Any] = {}
        required: list[str] = []
        params: list[tuple[str, Any, inspect._ParameterKind]] = []
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise _bad(f"{where}: *args and **kwargs cannot be described to a model")
            prop = schema.of(p.annotation, f"{where}: parameter {p.name!r}")
            if p.name in docs and "description" not in prop:
                prop = {**prop, "description": docs[p.name]}
            if p.default is p.empty:
                required.append(p.name)
            else:
                ok, value = _json_default(p.default)
                if ok:
                    prop = {**prop, "default": value}
            props[p.name] = prop
            params.append((p.name, p.annotation, p.kind))
        text = description
        if text is None and doc is not None:
            text = "\n\n".join(t for t in (doc.short_description, doc.long_description) if t)
        parameters: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            parameters["required"] = required
        parameters["additionalProperties"] = False
        fn_def: dict[str, Any] = {"name": self.name}
        if text:
            fn_def["description"] = text
        fn_def["parameters"] = parameters
        self.definition: dict[str, Any] = {"type": "function", "function": fn_def}
        self._params = params

    def bind(self, arguments: str | Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """``(args, kwargs)`` for the function from the model's arguments (a JSON
        object or its text); ``ToolArgumentsError`` if they do not fit."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError:
                raise ToolArgumentsError("the arguments are not valid JSON") from None
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError("the arguments must be a JSON object")
        names = {n for n, _, _ in self._params}
        unknown = sorted(set(arguments) - names)
        if unknown:
            raise ToolArgumentsError(f"unexpected argument {unknown[0]!r}")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        required = set(self.definition["function"]["parameters"].get("required", ()))
        for name, hint, kind in self._params:
            if name not in arguments:
                if name in required:
                    raise ToolArgumentsError(f"missing required argument {name!r}")
                continue
            value = _coerce(arguments[name], hint, name)
            if kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[name] = value
        return args, kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        flag = ", idempotent" if self.idempotent else ""
        return f"<srt.Tool {self.name!r}{flag}>"


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, idempotent: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make ``fn`` a ``Tool``: ``@tool``, ``@tool(idempotent=True)`` or ``tool(fn)``."""
    if fn is not None:
        return Tool(fn, name=name, description=description, idempotent=idempotent)

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description, idempotent=idempotent)

    return wrap


_MADE: weakref.WeakKeyDictionary[Any, Tool] = weakref.WeakKeyDictionary()


def as_tool(obj: Any) -> Tool:
    """``obj`` as a ``Tool``: a ``Tool`` as it is, a plain function made into one
    (once per function object)."""
    if isinstance(obj, Tool):
        return obj
    if not callable(obj):
        raise _bad(f"a tool must be a callable or a definition dict, got {type(obj).__name__}")
    try:
        made = _MADE.get(obj)
    except TypeError:  # not weak-referenceable (or unhashable): made each time
        return Tool(obj)
    if made is None:
        made = Tool(obj)
        with contextlib.suppress(TypeError):
            _MADE[obj] = made
    return made


def definition(obj: Any) -> Any:
    """The definition dict of a tool: a dict as it is, a callable's derived one."""
    if isinstance(obj, Mapping):
        return obj
    return as_tool(obj).definition


def _text_of(data: bytes | bytearray | memoryview) -> str:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{len(data)} bytes that are not UTF-8 text") from None


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _text_of(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    dump = getattr(value, "model_dump", None)  # a pydantic model
    if callable(dump):
        return dump(mode="json")
    return str(value)


def render_result(value: Any) -> str:
    """A tool's return value as the text of its result message: a string as it is,
    anything else as JSON (dataclasses, enums, dates and sets converted; bytes as
    their UTF-8 text, ``ValueError`` if they are not UTF-8). ``TypeError`` or
    ``ValueError`` if JSON cannot hold the value (a cycle, a key that is not a string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _text_of(value)
    return json.dumps(value, ensure_ascii=False, default=_plain)
