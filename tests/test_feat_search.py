"""Search as a user meets it, on both engines (docs/cli.md, "srt search"): unicode, a long
message, deleted and rewritten text, order and limits, and the query syntax of ``--fts``,
whose FTS5 operators PostgreSQL lacks must be refused rather than match nothing."""

from __future__ import annotations

import pytest

import srt


def _places(rt: srt.Runtime, text: str, **kw: object) -> list[tuple[tuple[str, int], ...]]:
    return [h.places for h in rt.store.search(text, **kw)]  # type: ignore[arg-type]


@pytest.fixture
def chat(store_url: str) -> srt.Runtime:
    rt = srt.Runtime(store_url)
    s = rt.session("a")
    s.append({"role": "system", "content": "You are helpful."})
    s.append({"role": "user", "content": "Where is my order? 🎉 café"})
    s.append({"role": "assistant", "content": 'It is in transit: foo-bar, C++, "quoted"'})
    s.append({"role": "user", "content": "x " * 60_000 + "needle"})
    return rt


def test_words_unicode_and_a_long_message(chat: srt.Runtime, store_url: str) -> None:
    with chat:
        assert _places(chat, "WHERE Order") == [(("a", 2),)]  # case does not count
        assert _places(chat, "needle") == [(("a", 4),)]  # the end of a 120 kB message
        assert _places(chat, "orde*") == [(("a", 2),)]  # a prefix, on both engines
        for literal in ("foo-bar", "C++", '"quoted', "-transit"):  # punctuation is text
            assert _places(chat, literal) == [(("a", 3),)], literal
        for nothing in ('"', "-", "OR", "*", "(", "NEAR"):
            assert _places(chat, nothing) == [], nothing
        postgres = "://" in store_url
        # As the docs say: PostgreSQL's accents count and its emoji are words (and its
        # case folding of letters beyond ASCII follows the server's LC_CTYPE).
        assert _places(chat, "cafe") == ([] if postgres else [(("a", 2),)])
        assert _places(chat, "🎉") == ([(("a", 2),)] if postgres else [])
        if not postgres:
            assert _places(chat, "CAFÉ") == [(("a", 2),)]


def test_deleted_and_rewritten_text_is_not_found(chat: srt.Runtime) -> None:
    with chat:
        s = chat.session("a")
        s.fork("b")
        s.edit(1, {"role": "user", "content": "Where is my parcel?"})
        assert _places(chat, "order") == [(("b", 2),)]
        assert _places(chat, "parcel") == [(("a", 2),)]
        chat.delete("b")
        assert _places(chat, "order") == []
        chat.gc()
        assert _places(chat, "order") == []
        assert _places(chat, "parcel") == [(("a", 2),)]


def test_best_match_first_and_the_limit(store_url: str) -> None:
    with srt.Runtime(store_url) as rt:
        s = rt.session("o")
        s.append({"role": "user", "content": "apple " + "filler " * 200})
        s.append({"role": "assistant", "content": "apple apple apple banana"})
        s.append({"role": "user", "content": "apple"})
        hits = rt.store.search("apple")
        assert len(hits) == 3 and hits[0].places == (("o", 2),)
        if "://" not in store_url:  # (bm25 weighs a message's length; ts_rank does not)
            assert hits[-1].places == (("o", 1),)
        assert [h.places for h in rt.store.search("apple", limit=2)] == [h.places for h in hits[:2]]
        for bad in (0, -1, True, "3"):
            with pytest.raises(srt.ConfigError, match="limit"):
                rt.store.search("apple", limit=bad)  # type: ignore[arg-type]


def test_fts_syntax(chat: srt.Runtime, store_url: str) -> None:
    with chat:
        assert _places(chat, "order OR transit", syntax=True) == [(("a", 2),), (("a", 3),)]
        assert _places(chat, "order NOT transit", syntax=True) == [(("a", 2),)]
        assert _places(chat, '"where is"', syntax=True) == [(("a", 2),)]
        assert _places(chat, '"is where"', syntax=True) == []
        if "://" not in store_url:
            assert _places(chat, "NEAR(order where, 5)", syntax=True) == [(("a", 2),)]
            assert _places(chat, "orde*", syntax=True) == [(("a", 2),)]
            with pytest.raises(srt.ConfigError, match="never closed"):
                chat.store.search('"where', syntax=True)
            return
        # PostgreSQL has neither NEAR nor a prefix operator in --fts: refused, not an
        # empty answer that reads as "nothing holds these words".
        for query, what in (("NEAR(order where, 5)", "NEAR"), ("orde*", r"prefix search")):
            with pytest.raises(srt.ConfigError, match=what):
                chat.store.search(query, syntax=True)
        assert _places(chat, '"orde*" where', syntax=True) == []  # quoted: a plain word
        assert _places(chat, '"where', syntax=True) == [(("a", 2),)]  # a stray quote is text


def test_a_refused_fts_query_builds_no_index(store_url: str) -> None:
    with srt.Runtime(store_url) as rt:
        rt.session("a").append({"role": "user", "content": "hello"})
        query = '"' if "://" not in store_url else "hel*"
        with pytest.raises(srt.ConfigError):
            rt.store.search(query, syntax=True)
        assert not rt.store.has_search_index()
