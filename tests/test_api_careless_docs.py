"""The calls the docs show a new user exist as shown, and every public method says what it
does (``help()``), so the pages and ``help(srt.Session)`` can be trusted.

``tests/test_docs_names.py`` checks that each ``srt.*`` name the docs use resolves; this
checks the calls written on ``s`` (a ``Session``) and ``rt`` (a ``Runtime``) in README.md
and docs/*.md: ``s.compact(end, summary, *, start=None)``, ``rt.session(name,
create=True)``... Each method exists, each keyword it is given is a parameter of it, and,
where no argument is elided (``...``), the arguments bind to its signature.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import srt

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
INLINE = re.compile(r"`((?:s|rt)\.[a-z_][a-z_0-9]*\([^`]*\))`")
OWNERS: dict[str, type] = {"s": srt.Session, "rt": srt.Runtime}


def _calls(code: str) -> list[tuple[type, ast.Call]]:
    """The method calls on ``s`` or ``rt`` in ``code`` (``rt.session(...)`` is a
    ``Session``), as (class, call)."""
    code = code.replace(", *,", ",").replace("(*,", "(")  # (a signature's bare *)
    out = []
    for node in ast.walk(ast.parse(code, mode="eval")):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Name) and owner.id in OWNERS:
            out.append((OWNERS[owner.id], node))
        elif (
            isinstance(owner, ast.Call)
            and isinstance(owner.func, ast.Attribute)
            and owner.func.attr in ("session", "create", "fork")
        ):
            out.append((srt.Session, node))
    return out


def _uses() -> list[tuple[str, str]]:
    uses = set()
    for page in PAGES:
        for m in INLINE.finditer(page.read_text(encoding="utf-8")):
            uses.add((page.name, m.group(1)))
    return sorted(uses)


USES = _uses()


def _is_ellipsis(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is Ellipsis


def check_call(cls: type, call: ast.Call) -> None:
    """Raise ``AssertionError`` if ``call`` (its method's name and arguments) does not
    fit ``cls``'s method of that name."""
    assert isinstance(call.func, ast.Attribute)
    name = call.func.attr
    method = getattr(cls, name, None)
    assert callable(method), f"{cls.__name__} has no method {name}"
    sig = inspect.signature(method)
    params = list(sig.parameters.values())[1:]  # (self)
    named = {p.name for p in params if p.kind is not p.VAR_POSITIONAL}
    any_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    for kw in call.keywords:
        if kw.arg is not None:  # (``**params``: any)
            assert kw.arg in named or any_kw, f"{cls.__name__}.{name}() takes no {kw.arg}="
    if any(_is_ellipsis(a) for a in call.args) or any(
        isinstance(a, ast.Starred) for a in call.args
    ):
        return  # (arguments elided: only the keywords are checked)
    args: list[Any] = [object() for _ in call.args]
    kwargs = {kw.arg: object() for kw in call.keywords if kw.arg is not None}
    try:
        sig.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise AssertionError(f"{ast.unparse(call)} does not fit {name}{sig}: {exc}") from None


def test_the_docs_show_calls_at_all() -> None:
    shown = {u for _, u in USES}
    assert "s.compact(end, summary, *, start=None)" in shown and len(USES) > 40


@pytest.mark.parametrize(("page", "code"), USES, ids=[f"{p}:{c}" for p, c in USES])
def test_every_call_the_docs_show_fits_its_method(page: str, code: str) -> None:
    calls = _calls(code)
    assert calls, f"{page}: {code} is no call on s or rt"
    for cls, call in calls:
        check_call(cls, call)


@pytest.mark.parametrize(
    "code",
    [
        "s.restore()",  # (a record is required)
        "s.rewind(n=1, at=2)",
        "rt.sessions(name)",
        "s.fork(name, start=None)",
        "s.frobnicate()",
        "rt.session(name).frobnicate()",
    ],
)
def test_the_check_finds_a_call_that_does_not_fit(code: str) -> None:
    with pytest.raises(AssertionError):
        for cls, call in _calls(code):
            check_call(cls, call)


# -- help(): every public method and property says what it does --------------------------


def _public(cls: type) -> list[tuple[str, Any]]:
    out = []
    for klass in cls.__mro__:
        if klass is object or not klass.__module__.startswith("srt"):
            continue
        for attr, value in vars(klass).items():
            if attr.startswith("_"):
                continue
            f = value.fget if isinstance(value, property) else value
            if isinstance(f, (staticmethod, classmethod)):
                f = f.__func__
            if inspect.isfunction(f):
                out.append((f"{cls.__name__}.{attr}", f))
    return out


#: The classes of ``srt.__all__`` whose code is srt's core (the providers' classes are
#: srt.providers', checked apart).
CORE = [
    getattr(srt, n)
    for n in srt.__all__
    if inspect.isclass(getattr(srt, n))
    and not issubclass(getattr(srt, n), BaseException)
    and not getattr(srt, n).__module__.startswith(("srt.providers", "srt.wire"))
]


def test_the_core_classes_are_found() -> None:
    assert {srt.Session, srt.Runtime, srt.Pricing, srt.WindowPolicy, srt.Entry} <= set(CORE)


@pytest.mark.parametrize("cls", CORE, ids=lambda c: c.__name__)
def test_every_public_method_of_the_core_classes_has_a_docstring(cls: type) -> None:
    assert cls.__doc__, cls.__name__
    missing = [name for name, f in _public(cls) if not (f.__doc__ or "").strip()]
    assert missing == []


#: The provider classes of ``srt.__all__`` (``srt.Local`` is ``srt.LocalProvider``).
PROVIDERS = list(
    dict.fromkeys(
        getattr(srt, n)
        for n in srt.__all__
        if inspect.isclass(getattr(srt, n))
        and not issubclass(getattr(srt, n), BaseException)
        and getattr(srt, n).__module__.startswith("srt.providers")
    )
)


def test_the_provider_classes_are_found() -> None:
    assert {srt.OpenAI, srt.Azure, srt.Bedrock, srt.LocalProvider, srt.Timeouts} <= set(PROVIDERS)


@pytest.mark.parametrize("cls", PROVIDERS, ids=lambda c: c.__name__)
def test_every_public_method_of_the_provider_classes_has_a_docstring(cls: type) -> None:
    assert cls.__doc__, cls.__name__
    missing = [name for name, f in _public(cls) if not (f.__doc__ or "").strip()]
    assert missing == []
