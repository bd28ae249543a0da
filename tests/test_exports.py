"""The public surface: ``srt.__all__`` and the error tree drawn in ``srt.errors``."""

from __future__ import annotations
import __future__

import builtins
import inspect
import re
import subprocess
import sys
import types

import pytest

import srt
import srt.errors


def _public_names() -> set[str]:
    """Names ``srt/__init__`` defines that look public: not private, not modules."""
    return {
        name
        for name, value in vars(srt).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not isinstance(value, __future__._Feature)  # ``from __future__ import annotations``
    }


def _error_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(srt.errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == srt.errors.__name__
    }


def test_all_is_sorted_and_unique() -> None:
    assert srt.__all__ == sorted(srt.__all__)
    assert len(set(srt.__all__)) == len(srt.__all__)


def test_all_is_complete() -> None:
    missing = _public_names() - set(srt.__all__)
    assert not missing, f"public names missing from srt.__all__: {sorted(missing)}"
    assert "__version__" in srt.__all__
    assert {"Runtime", "Session", "SrtError"} <= set(srt.__all__)


def test_every_exported_name_resolves() -> None:
    for name in srt.__all__:
        assert hasattr(srt, name), name
        assert getattr(srt, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from srt import *", namespace)
    assert set(srt.__all__) <= set(namespace)


def test_version_matches_the_distribution() -> None:
    from importlib.metadata import version

    assert srt.__version__ == version("stateful-runtime")


def test_errors_all_is_sorted_and_complete() -> None:
    assert srt.errors.__all__ == sorted(srt.errors.__all__)
    assert set(srt.errors.__all__) == set(_error_classes())


def test_every_error_is_exported_from_srt() -> None:
    for name, cls in _error_classes().items():
        assert getattr(srt, name, None) is cls, f"srt.{name} is not exported"
        assert name in srt.__all__


@pytest.mark.parametrize("name", sorted(_error_classes()))
def test_every_error_derives_from_srt_error(name: str) -> None:
    cls = _error_classes()[name]
    assert issubclass(cls, srt.SrtError)
    assert name.endswith("Error")
    assert cls.__doc__, f"{name} has no docstring"


_TREE_LINE = re.compile(
    r"^(?P<indent>[\s│]*)(?:[├└]── )?(?P<name>\w+Error)(?:\((?P<bases>[^)]*)\))?"
)


def _tree() -> list[tuple[int, str, list[str]]]:
    """``(depth, class name, extra bases)`` for every class drawn in the docstring."""
    doc = srt.errors.__doc__ or ""
    out = []
    for line in doc.splitlines():
        m = _TREE_LINE.match(line)
        if not m or ("──" not in line and m.group("name") != "SrtError"):
            continue
        indent = m.group("indent")
        depth = 0 if m.group("name") == "SrtError" else 1 + (len(indent) - 4) // 4
        bases = [b.strip() for b in (m.group("bases") or "").split(",") if b.strip()]
        out.append((depth, m.group("name"), bases))
    return out


def test_the_docstring_tree_names_every_error_class() -> None:
    drawn = [name for _, name, _ in _tree()]
    assert len(drawn) == len(set(drawn)), "a class is drawn twice"
    assert set(drawn) == set(_error_classes())


def test_the_docstring_tree_matches_the_class_hierarchy() -> None:
    classes = _error_classes()
    parents: list[str] = []
    for depth, name, bases in _tree():
        del parents[depth:]
        cls = classes[name]
        if parents:
            parent = classes[parents[-1]]
            assert parent in cls.__bases__, f"{name} is drawn under {parents[-1]}"
        for base in bases:
            resolved = classes.get(base) or getattr(builtins, base)
            assert resolved in cls.__mro__, f"{name} should derive from {base}"
        parents.append(name)
    assert parents  # the tree was parsed


def test_error_attributes() -> None:
    exc = srt.RateLimitError("slow down", retry_after=1.5)
    assert exc.retry_after == 1.5
    assert srt.RateLimitError("x").retry_after is None
    resp = srt.ProviderResponseError("bad", status=500, body="oops")
    assert (resp.status, resp.body) == (500, "oops")
    assert isinstance(srt.SessionNotFoundError("x"), LookupError)
    assert isinstance(srt.InvalidMessageError("x"), ValueError)
    assert isinstance(srt.ConfigError("x"), ValueError)
    assert isinstance(srt.InvalidSessionNameError("x"), ValueError)


def _documented_names() -> list[str]:
    """The names listed in docs/api.md's tables (first column, in backticks)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", text, flags=re.M)


def test_all_matches_the_docs() -> None:
    documented = _documented_names()
    assert len(documented) == len(set(documented)), "a name is listed twice in docs/api.md"
    assert set(documented) == set(srt.__all__), (
        f"in srt.__all__ but not in docs/api.md: {sorted(set(srt.__all__) - set(documented))}; "
        f"in docs/api.md but not in srt.__all__: {sorted(set(documented) - set(srt.__all__))}"
    )


def test_import_srt_loads_no_http_stack() -> None:
    """``import srt`` and the CLI's module leave httpx, httpcore, asyncio, ssl and
    ``importlib.metadata`` unloaded (about 90 ms of a CLI command): the providers load
    when one is first named."""
    code = (
        "import sys, srt, srt.cli\n"
        "heavy = ('httpx', 'httpcore', 'asyncio', 'ssl', 'importlib.metadata',"
        " 'srt.providers.base', 'srt.providers.transport', 'srt.local.server')\n"
        "print(repr([m for m in heavy if m in sys.modules]))\n"
        "print(repr(srt.OpenAI.__module__))\n"
        "print(repr([m for m in ('httpx', 'srt.providers.transport') if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[]",
        "'srt.providers.openai'",
        "['httpx', 'srt.providers.transport']",
    ]


def test_lazy_names_resolve_as_the_providers_package_has_them() -> None:
    import srt.providers
    import srt.providers.local

    for name in ("Anthropic", "Azure", "Bedrock", "OpenAI", "OpenAICompatible", "Provider"):
        assert getattr(srt, name) is getattr(srt.providers, name), name
        assert name in dir(srt) and name in dir(srt.providers), name
    assert srt.Local is srt.providers.local.Local
    assert srt.LocalProvider is srt.providers.local.LocalProvider
    assert issubclass(srt.providers.Options, object)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        srt.Nope  # noqa: B018 - the lookup is the test
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        srt.providers.Nope  # noqa: B018


#: What ``import srt`` (and the ``srt`` command's module) no longer loads: the tool loop,
#: prices and savings, the ledger's checker, the providers' options, the wire formats a
#: program does not use, and the stdlib modules that came with them. Each loads where it
#: is first used (``srt.Pricing``, ``Session.run``, ``get_format``...).
_LAZY_MODULES = (
    "srt.tasks",
    "srt._task",
    "srt.tools",
    "srt.pricing",
    "srt.savings",
    "srt.ledger",
    "srt.providers.policy",
    "srt.providers.sigv4",
    "srt.store.copy",
    "srt.wire.anthropic",
    "srt.wire.azure",
    "srt.wire.bedrock",
    "srt.wire.openai_chat",
    "srt.wire.openai_responses",
    "docstring_parser",
    "concurrent.futures",
    "logging",
    "decimal",
    "platformdirs",
    "tempfile",
    "uuid",
    "urllib.parse",
    "ipaddress",
    "gzip",
    "apsw.ext",
)


def _loaded_after(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint(repr(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(eval(done.stdout.splitlines()[-1]))  # a repr of a list of str
    return [m for m in _LAZY_MODULES if m in loaded]


def test_import_srt_loads_no_optional_part() -> None:
    assert _loaded_after("import srt, srt.cli") == []


def test_a_request_body_loads_only_its_format() -> None:
    code = (
        "import srt\n"
        "with srt.Runtime(':memory:') as rt:\n"
        "    s = rt.session('x')\n"
        "    s.append({'role': 'user', 'content': 'hi'})\n"
        "    s.request('openai.chat', model='m')\n"
        "    rt.sessions()\n"
    )
    assert _loaded_after(code) == ["srt.wire.openai_chat"]


def test_lazily_exported_names_resolve_to_their_modules() -> None:
    code = (
        "import srt\n"
        "for name in srt.__all__:\n"
        "    value = getattr(srt, name)\n"
        "    assert value is not None, name\n"
        "import srt.tasks, srt.tools, srt.pricing, srt.savings, srt.wire.azure\n"
        "assert srt.Pricing is srt.pricing.Pricing and srt.Savings is srt.savings.Savings\n"
        "assert srt.tool is srt.tools.tool and srt.ToolRun is srt.tasks.ToolRun\n"
        "assert srt.AzureEndpoint is srt.wire.azure.AzureEndpoint\n"
    )
    assert len(_loaded_after(code)) > 10  # every one loaded, by its name


def test_submodules_import_srt_loaded_before_are_still_attributes() -> None:
    code = (
        "import srt, srt.wire\n"
        "assert srt.tasks.Task and srt.pricing.Pricing and srt.ledger.verify_ledger\n"
        "assert srt.savings.of_store and srt.tools.as_tool and srt.providers.names\n"
        "assert srt.wire.anthropic.FORMAT.name == 'anthropic.messages'\n"
        "assert sorted(srt.wire.FORMATS) == sorted(srt.wire.NAMES)\n"
        "assert srt.wire.get_format('bedrock.converse') is srt.wire.FORMATS['bedrock.converse']\n"
    )
    assert "srt.tasks" in _loaded_after(code)


def test_the_tool_call_records_kind_is_known_without_the_tool_loop() -> None:
    """The store deletes a session's start records with it, and so must know their kind
    in a process that never ran a task (``srt delete``)."""
    code = (
        "import srt\n"
        "from srt.store.owners import session_kinds\n"
        "assert 'srt.tool_call' in session_kinds(), session_kinds()\n"
        "import srt._task\n"
        "assert srt._task.CLAIMS == 'srt.tool_call'\n"
    )
    assert "srt._task" in _loaded_after(code)
