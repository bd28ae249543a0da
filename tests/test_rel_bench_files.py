"""The bench scripts (``bench/**/*.py``, outside ``srt.bench``) write their figures
readable by their owner only, whatever the umask.

Each file a script writes goes through ``bench/benchio.py`` (``write_text``, ``dump``,
``copy_private``, ``open_private``), that is through ``srt.bench.report.open_private``
(0600, also over an older file). Two tests keep it so:

* every script's syntax tree is searched for another way to create a file: ``open``
  (the builtin, or a ``Path``'s) with a mode that writes, ``os.open`` with a mode other
  than 0600, ``Path.write_text``/``write_bytes``, ``shutil.copyfile`` (which, unlike
  ``shutil.copy``, does not take the source's mode) and matplotlib's ``savefig(path)``.
  A static search, not a run of one script: it sees every script, those too slow or
  too heavy (a PostgreSQL server, a peer library) to run here, and the next one added;
* ``benchio``'s writers themselves, under umask 000 and 022.

Before, every script wrote its ``--json`` (and ``bench/limits.py`` its copy of a store)
with the umask's mode: 0666 under umask 000.
"""

from __future__ import annotations

import ast
import stat
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

_WRITES = set("wax+")


def _mode_writes(call: ast.Call, at: int, literal_only: bool = False) -> bool:
    """Whether the ``open`` call's mode (positional ``at``, or ``mode=``) may create or
    write a file: a literal with w, a, x or +, or anything not a literal (unless
    ``literal_only``: a method named ``open`` whose argument ``at`` is a string literal
    only when it is a mode, as ``Path.open``'s, not a request's ``transport.open``)."""
    mode: ast.expr | None = call.args[at] if len(call.args) > at else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode, literal_only = kw.value, False
    if mode is None:
        return False  # "r"
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return bool(_WRITES & set(mode.value))
    return not literal_only


def offences(path: Path, root: Path = BENCH) -> list[str]:
    """Each place in ``path`` (named from ``root``) that creates or writes a file other
    than through benchio."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        bad = False
        if isinstance(f, ast.Name) and name == "open":
            bad = _mode_writes(node, 1)
        elif name == "open" and owner == "os":
            mode = node.args[2] if len(node.args) > 2 else None
            bad = not (isinstance(mode, ast.Constant) and mode.value == 0o600)
        elif name == "open" and owner not in ("tarfile", "zipfile", "gzip", "io", "benchio"):
            bad = _mode_writes(node, 0, literal_only=True)  # Path.open(mode): mode first
        elif owner != "benchio":
            bad = name in ("write_text", "write_bytes", "savefig") or (
                name == "copyfile" and owner == "shutil"
            )
        if bad:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def scripts() -> list[Path]:
    return sorted(p for p in BENCH.rglob("*.py") if p.name != "benchio.py")


def test_no_bench_script_writes_a_file_but_through_benchio() -> None:
    assert len(scripts()) >= 30
    found = [o for p in scripts() for o in offences(p)]
    assert found == [], "\n".join(found)


def test_the_search_knows_each_way_to_write(tmp_path: Path) -> None:
    lines = {
        'open(p, "w")': True,
        'open(p, mode="ab")': True,
        "open(p, m)": True,
        "open(p)": False,
        'open(p, "rb")': False,
        'Path(p).open("w", encoding="utf-8")': True,
        'Path(p).open("r")': False,
        'Path(p).open(mode="w")': True,
        "Path(p).open(mode=m)": True,
        "client.transport.open(request)": False,
        "os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)": True,
        "os.open(p, os.O_CREAT | os.O_WRONLY)": True,
        "os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)": False,
        "Path(p).write_text(t)": True,
        "Path(p).write_bytes(b)": True,
        "shutil.copyfile(a, b)": True,
        "shutil.copy(a, b)": False,
        "fig.savefig(p)": True,
        "tarfile.open(p)": False,
        "benchio.open_private(p)": False,
        "benchio.dump(p, d)": False,
        "benchio.write_text(p, t)": False,
    }
    for i, (line, bad) in enumerate(lines.items()):
        script = tmp_path / f"s{i}.py"
        script.write_text(line + "\n", encoding="utf-8")
        assert bool(offences(script, tmp_path)) is bad, line


def test_benchio_writes_private_files(
    umask: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.delitem(sys.modules, "benchio", raising=False)
    import benchio

    old = tmp_path / "old.json"  # an older file, world-readable, is written over private
    old.write_text("{}")
    old.chmod(0o666)
    benchio.dump(str(tmp_path / "figures.json"), {"a": 1})
    benchio.dump(str(old), {"b": 2})
    benchio.write_text(str(tmp_path / "table.txt"), "x\n")
    benchio.copy_private(str(tmp_path / "table.txt"), str(tmp_path / "copy.txt"))
    with benchio.open_private(str(tmp_path / "raw.bin")) as f:
        f.write(b"\x00")
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(
        ("figures.json", "old.json", "table.txt", "copy.txt", "raw.bin"), "0o600"
    )
    assert old.read_text() == '{\n "b": 2\n}' and (tmp_path / "copy.txt").read_text() == "x\n"
