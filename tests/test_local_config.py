"""``LocalProvider``'s settings refused before anything starts, each with a
``ConfigError`` naming the setting (before: a ``TypeError`` or ``FileNotFoundError``
from the first request, an ``OverflowError`` for an endless ``startup_timeout``, a
``ProviderError`` about an ``int32_t`` from the child for ``ctx_size * slots``). No
server is started; the model file is the real one, so only the setting is at fault.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from srt.errors import ConfigError
from srt.providers.local import LocalProvider
from test_local import model

__all__ = ["model"]


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"log_path": 5}, "log_path must be a path"),
        ({"log_path": "{tmp}/no/such/folder/llama.log"}, "log_path: there is no folder"),
        ({"state_dir": 5}, "state_dir must be a path"),
        ({"startup_timeout": math.inf}, "startup_timeout must be a number of seconds, finite"),
        ({"ctx_size": 2**31}, r"ctx_size \* slots must be at most 2147483647"),
        ({"ctx_size": 4096, "slots": 2**20}, r"got 4096 \* 1048576"),
    ],
)
def test_bad_settings_are_config_errors_naming_them(
    model: str, tmp_path: Path, kw: dict[str, Any], says: str
) -> None:
    kw = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in kw.items()}
    with pytest.raises(ConfigError, match=says):
        LocalProvider(model, **kw)


def test_a_log_path_that_cannot_be_opened_at_start_is_a_config_error(
    model: str, tmp_path: Path
) -> None:
    """The folder was there when the provider was made (as a ``Path``), and gone when
    it starts."""
    folder = tmp_path / "logs"
    folder.mkdir()
    p = LocalProvider(model, save_slots=False, log_path=folder / "llama.log")
    folder.rmdir()
    with pytest.raises(ConfigError, match=r"cannot write llama\.cpp's log to .*llama\.log"):
        p.start()
    assert p.pid is None
    p.close()
