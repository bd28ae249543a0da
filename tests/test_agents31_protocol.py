"""``SrtSession``'s own arguments against the Agents SDK's ``Session`` protocol, on
SQLite and PostgreSQL: settings the SDK's ``coerce_session_settings`` refuses, and a
``model`` that is not a name, are a ``ConfigError`` before anything is written.

Before: bad ``session_settings`` were the SDK's ``TypeError`` or pydantic's
``ValidationError``, raised after the session's ``main`` branch record was written; a
bad value put in the ``session_settings`` attribute (the SDK's, public) made every
``get_items`` raise one; ``model=["m"]`` was taken, and the first ``add_items`` with a run
context was APSW's ``TypeError`` (``model=5`` went into the ledger as a number)."""

from __future__ import annotations

from typing import Any

import pytest
from agents.memory.session_settings import SessionSettings

import srt
from agents_support import run
from srt.integrations.agents import SrtSession
from support import agents_run

ITEM = {"role": "user", "content": "hi", "id": "u1"}


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"limit": "x"}, "limit: Input should be a valid integer"),
        ({"bogus": 1}, "Unknown session settings: bogus"),
        (5, "got int"),
        ("limit=3", "got str"),
    ],
)
def test_settings_the_sdk_refuses(store_url: str, settings: Any, said: str) -> None:
    with srt.Runtime(store_url) as rt:
        with pytest.raises(srt.ConfigError, match="session_settings must be") as err:
            SrtSession("s", rt, session_settings=settings)
        assert said in str(err.value) and "\n" not in str(err.value)
        assert isinstance(err.value, TypeError)  # (what the SDK's own sessions raise)
        # Nothing of the session was written.
        assert rt.store.list_objects("agents.branch", "s") == []
        assert rt.store.get_session("s") is None


def test_the_settings_attribute_set_to_what_the_sdk_refuses(store_url: str) -> None:
    with srt.Runtime(store_url) as rt:
        s = SrtSession("s", rt, session_settings={"limit": 1})
        run(s.add_items([ITEM, {"role": "assistant", "content": "hello"}]))
        assert run(s.get_items()) == [{"role": "assistant", "content": "hello"}]
        s.session_settings = {"limit": "x"}  # type: ignore[assignment]
        with pytest.raises(srt.ConfigError, match="limit: Input should be a valid integer"):
            run(s.get_items())
        assert len(run(s.get_items(limit=-1))) == 2  # (an explicit limit needs none)
        s.session_settings = SessionSettings(limit=None)
        assert len(run(s.get_items())) == 2


@pytest.mark.parametrize("model", [["m"], 5, b"gpt"])
def test_a_model_that_is_not_a_name(store_url: str, model: Any) -> None:
    with srt.Runtime(store_url) as rt:
        with pytest.raises(srt.ConfigError, match="model must be a model name"):
            SrtSession("s", rt, model=model)
        assert rt.store.list_objects("agents.branch", "s") == []
        s = SrtSession("s", rt, model="gpt-4o-mini")
        run(s.add_items([ITEM], wrapper=agents_run(3, 1)))
        assert [c.model for c in rt.store.calls(session=rt.store.get_session("s").id)] == [
            "gpt-4o-mini"
        ]
