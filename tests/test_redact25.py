"""``srt.store.redact_url``: the one way srt shows a store's path or URL without its
password (a PostgreSQL store's ``location`` and ``repr``, and the CLI's ``srt db path``,
``srt copy``'s messages and ``srt serve``'s first line, which had a copy of their own,
``without_password``)."""

from __future__ import annotations

import pytest

from srt.store import redact_url
from support import run_cli

S = "Canary-redact25"

CASES = [
    # URLs: the user part's password, and ?password= / ?sslpassword= (any spelling)
    (f"postgresql://app:{S}@db:5432/chats", "postgresql://app:***@db:5432/chats"),
    (f"postgres://app:{S}@db/chats?sslmode=require", "postgres://app:***@db/chats?sslmode=require"),
    (
        f"postgresql://app@db/chats?password={S}&application_name=a%20b",
        "postgresql://app@db/chats?password=***&application_name=a+b",
    ),
    (
        f"postgresql://?host=/run/pg&sslpassword={S}",
        "postgresql://?host=%2Frun%2Fpg&sslpassword=***",
    ),
    (f"postgresql://db/chats?pass%77ord={S}", "postgresql://db/chats?password=***"),
    (f"postgresql://app:{S}@a@db/chats", "postgresql://app:***@db/chats"),
    # a password whose / ? # ended the user part early (PostgresStore refuses these)
    (f"postgresql://app:{S}#x/y@db/chats", "postgresql://app:***@db/chats"),
    (f"postgresql://app:{S}/y@db/chats", "postgresql://app:***@db/chats"),
    (f"postgresql://app:{S}?y@db/chats", "postgresql://app:***@db/chats"),
    (f"postgresql://app:[{S}@db/chats", "postgresql://app:***@db/chats"),
    # keyword/value strings: quoted, escaped, unterminated, spaced, sslpassword
    (f"host=db password='{S} \\' x' dbname=c", "host=db password=*** dbname=c"),
    (f"host=db password = {S} dbname=c", "host=db password = *** dbname=c"),
    (f"host=db sslpassword={S}", "host=db sslpassword=***"),
    (f"host=db password='{S} and on", "host=db password=***"),
    # nothing to hide: shown as given
    (
        "postgresql://app@db/chats?application_name=a%20b",
        "postgresql://app@db/chats?application_name=a%20b",
    ),
    ("host=db dbname=chats", "host=db dbname=chats"),
    ("/data/password=x/chat.db", "/data/password=x/chat.db"),
    ("sqlite:///runs/a#b.db", "sqlite:///runs/a#b.db"),
    ("chats.db", "chats.db"),
]


@pytest.mark.parametrize(("given", "shown"), CASES)
def test_redact_url(given: str, shown: str) -> None:
    assert redact_url(given) == shown
    assert S not in redact_url(given)


def test_the_cli_and_the_store_share_it() -> None:
    from srt.cli import _common
    from srt.store.postgres import urls

    assert _common.redact_url is redact_url is urls.redact_url
    assert not hasattr(_common, "without_password")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://db/chats?pass%77ord={S}",
        f"postgresql://app:{S}#x/y@db/chats",
        f"postgresql://app:{S}/y@db/chats",
        f"postgresql://app:{S}?y@db/chats",
    ],
)
def test_srt_db_path_never_prints_the_password(url: str) -> None:
    """Before: the CLI's own copy printed these whole (its ``urlsplit`` found no
    password, its pattern no ``password=``)."""
    code, out, err = run_cli("--db", url, "db", "path")
    assert code == 0 and err == ""
    assert S not in out and "***" in out
