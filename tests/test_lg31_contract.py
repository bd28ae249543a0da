"""``SrtSaver`` against the ``BaseCheckpointSaver`` contract, read again (a SQLite file; a
PostgreSQL schema): arguments LangGraph's savers take that it got wrong.

``list(filter=...)`` that is not a dict (a string, a list of pairs) let a bare
``AttributeError`` out of the saver; a run id that is not text (``None``) was taken for
the run id ``"None"`` by ``delete_for_runs``. Both are a ``ConfigError`` now, before
anything is read or deleted; what the saver holds is unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from srt.errors import ConfigError
from srt.integrations.langgraph import SrtSaver
from test_lg29_delete_races import _cfg
from test_lg30_drop_races import _Writer


@pytest.fixture
def db(store_url: str) -> str:
    """A SQLite file, then a PostgreSQL schema (conftest's ``store_url``)."""
    return store_url


async def _alist(saver: SrtSaver, **kwargs: Any) -> list[Any]:
    return [t async for t in saver.alist(_cfg(), **kwargs)]


@pytest.mark.parametrize("bad", ["run_id", [("run_id", "r1")], {1: "r1"}, {"\ud800": "r1"}])
def test_a_list_filter_that_is_not_a_dict_of_text_keys_is_a_config_error(db: str, bad: Any) -> None:
    writer = _Writer(db)
    try:
        writer.put("r1")
        with pytest.raises(ConfigError, match="filter"):
            list(writer.saver.list(_cfg(), filter=bad))
        with pytest.raises(ConfigError, match="filter"):
            asyncio.run(_alist(writer.saver, filter=bad))
        assert len(list(writer.saver.list(_cfg(), filter={"run_id": "r1"}))) == 1
        assert list(writer.saver.list(_cfg(), filter={"run_id": "r2"})) == []
    finally:
        writer.saver.close()


@pytest.mark.parametrize("bad", [[None], ["r1", 1.5], [b"r1"], [True]])
def test_a_run_id_that_is_not_text_is_a_config_error_and_deletes_nothing(db: str, bad: Any) -> None:
    writer = _Writer(db)
    try:
        cid = writer.put("None")  # (a run id "None": what [None] was taken for)
        with pytest.raises(ConfigError, match="run id"):
            writer.saver.delete_for_runs(bad)
        with pytest.raises(ConfigError, match="run id"):
            asyncio.run(writer.saver.adelete_for_runs(bad))
        left = [t.config["configurable"]["checkpoint_id"] for t in writer.saver.list(_cfg())]
        assert left == [cid]
    finally:
        writer.saver.close()
