"""``srt ls``'s overview on SQLite against a model computed from each session's chain:
bodies of every size (some spanning heap rows), forks sharing history, edits, deleted
sessions and collected nodes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import srt
from srt.store.base import USER_PREFIX

ROLES = st.sampled_from(["user", "assistant", "system"])
TEXTS = st.one_of(
    st.text(max_size=12),
    st.integers(0, 40_000).map(lambda n: "é" * (n // 2) + "x" * (n % 7)),
)
STEPS = st.lists(
    st.tuples(st.sampled_from(["append", "fork", "rewind", "delete", "gc"]), ROLES, TEXTS),
    min_size=1,
    max_size=25,
)


def _model(rt: srt.Runtime) -> dict[str, tuple[int, int, int, int]]:
    roots: dict[str, int | None] = {}
    out: dict[str, tuple[int, int, int]] = {}
    for info in rt.sessions():
        row = rt.store.get_session(info.name)
        assert row is not None
        chain = rt.store.chain(row.head) if row.head is not None else []
        bodies = [bytes(r[2]) for r in chain]
        roots[info.name] = chain[0][0] if chain else None
        out[info.name] = (
            len(bodies),
            sum(b.startswith(USER_PREFIX) for b in bodies),
            sum((len(b) + 3) // 4 for b in bodies),
        )
    branches = {
        name: (sum(r == root for r in roots.values()) if root is not None else 1)
        for name, root in roots.items()
    }
    return {name: (*out[name], branches[name]) for name in out}


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_overview_matches_the_chains(
    tmp_path_factory: object, steps: list[tuple[str, str, str]]
) -> None:
    path = Path(tmp_path_factory.mktemp("ov")) / "ov.db"  # type: ignore[attr-defined]
    with srt.Runtime(str(path)) as rt:
        names = ["s0"]
        rt.session("s0")
        for i, (op, role, text) in enumerate(steps):
            name = names[i % len(names)]
            s = rt.session(name)
            if op == "append":
                s.append({"role": role, "content": text})
            elif op == "fork":
                names.append(f"f{i}")
                s.fork(f"f{i}", at=len(s) // 2)
            elif op == "rewind" and len(s):
                s.rewind(len(s) - 1)
            elif op == "delete" and len(names) > 1:
                rt.delete(names.pop(i % len(names)))
            elif op == "gc":
                rt.gc()
        got = {o.name: (o.messages, o.turns, o.tokens, o.branches) for o in rt.store.overview()}
        assert got == _model(rt)


def test_a_role_split_across_heap_rows_is_read(tmp_path: Path) -> None:
    """A user message whose first bytes end one heap row and begin the next."""
    with srt.Runtime(str(tmp_path / "split.db")) as rt:
        s = rt.session("a")
        s.append({"role": "assistant", "content": "x" * 30_000})
        s.append({"role": "assistant", "content": "y" * 100})
        conn = rt.store.db.connection()  # type: ignore[attr-defined]
        rid, zero = conn.execute(
            "SELECT id, instr(data, zeroblob(1)) FROM heap ORDER BY id DESC LIMIT 1"
        ).fetchone()
        full = conn.execute("SELECT length(data) FROM heap WHERE id = 0").fetchone()[0]
        end, boundary = rid + zero - 1, rid + full  # where the last row ends once it is full
        filler = boundary - end - 5 - len(b'{"role":"assistant","content":""}')
        assert filler > 0
        s.append({"role": "assistant", "content": "z" * filler}, {"role": "user", "content": "hi"})
        at = conn.execute("SELECT at FROM nodes WHERE id = ?", (s.head,)).fetchone()[0]
        assert at == boundary - 5  # its 14 first bytes are in two rows:
        assert conn.execute("SELECT count(*) FROM heap WHERE id = ?", (at + 5,)).fetchone()[0]
        (o,) = rt.store.overview()
        assert (o.messages, o.turns) == (4, 1)
