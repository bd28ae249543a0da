"""Install the ``encryption`` extra in fresh venvs, exactly as docs/reliability.md says.

    python bench/encryption_install.py [--json out.json] [--wheel DIR] [--keep]

apsw-sqlite3mc ships the same ``apsw`` module (an ``apsw/`` folder) as the plain
``apsw`` srt depends on. pip installs the two wheels into that folder one after the
other, and for packages without dependencies it goes in reverse name order, so in a
single ``pip install 'stateful-runtime[encryption]'`` the plain build is written last
and wins. This script checks, each in a fresh venv:

* ``one step``: that single command; then whether ``apsw`` is the cipher build, what
  ``Runtime(key=...)`` says, and the documented repair
  (``pip install --force-reinstall --no-deps apsw-sqlite3mc``);
* ``two steps``: ``pip install stateful-runtime`` then
  ``pip install 'stateful-runtime[encryption]'`` (pip keeps the plain apsw it has and
  adds apsw-sqlite3mc over it), the documented install.

After each install: ``pip check``; an encrypted store round trip (the message text is
absent from the file bytes, a wrong key is refused); a plain store still opens and
verifies. Prints one JSON document with what it found and how long each step took.
It builds the srt wheel once (``pip wheel``, the Cython core included) unless given
``--wheel``; everything else comes from the package index (or pip's cache).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CHECK = r"""
import json, os, sys, tempfile
import apsw, srt
out = {"apsw_is_cipher_build": hasattr(apsw, "mc_version"), "apsw": apsw.apsw_version()}
d = tempfile.mkdtemp()
try:
    with srt.Runtime(os.path.join(d, "enc.db"), key="a passphrase") as rt:
        rt.session("s").append({"role": "user", "content": "CANARY-TEXT-4711"})
    data = open(os.path.join(d, "enc.db"), "rb").read()
    out["encrypted_round_trip"] = True
    out["text_in_file"] = b"CANARY-TEXT-4711" in data
    try:
        srt.Runtime(os.path.join(d, "enc.db"), key="wrong")
        out["wrong_key"] = "accepted"
    except srt.SrtError as exc:
        out["wrong_key"] = type(exc).__name__
    with srt.Runtime(os.path.join(d, "enc.db"), key="a passphrase") as rt:
        out["reads_back"] = rt.session("s").messages()[0]["content"] == "CANARY-TEXT-4711"
except srt.SrtError as exc:
    out["encrypted_round_trip"] = False
    out["error"] = f"{type(exc).__name__}: {exc}"
with srt.Runtime(os.path.join(d, "plain.db")) as rt:
    rt.session("s").append({"role": "user", "content": "plain"})
    out["plain_store_verifies"] = rt.store.verify().ok
print(json.dumps(out))
"""


def run(cmd: list[str], **kw: Any) -> tuple[int, str, float]:
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return p.returncode, (p.stdout + p.stderr)[-4000:], round(time.monotonic() - t0, 1)


def fresh_venv(where: Path) -> str:
    venv.create(where, with_pip=True, clear=True)
    return str(where / "bin" / "python")


def pip(py: str, *args: str) -> tuple[int, str, float]:
    return run([py, "-m", "pip", "--disable-pip-version-check", "install", "-q", *args])


def check(py: str) -> dict[str, Any]:
    code, text, _seconds = run([py, "-m", "pip", "check"])
    out: dict[str, Any] = {"pip_check": "ok" if code == 0 else text.strip()}
    code, text, _seconds = run([py, "-c", CHECK], cwd=tempfile.gettempdir())
    try:
        out.update(json.loads(text.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        out["check_failed"] = text
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    ap.add_argument("--wheel", metavar="DIR", help="a directory holding the srt wheel")
    ap.add_argument("--keep", action="store_true", help="keep the venvs")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="srt-encryption-install-"))
    doc: dict[str, Any] = {"pip": None}
    try:
        if args.wheel:
            wheels = glob.glob(os.path.join(args.wheel, "stateful_runtime-*.whl"))
        else:
            code, text, seconds = run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "-q",
                    "--no-deps",
                    "-w",
                    str(work),
                    str(ROOT),
                ]
            )
            doc["wheel_build_s"] = seconds
            assert code == 0, text
            wheels = glob.glob(str(work / "stateful_runtime-*.whl"))
        wheel = wheels[0]

        py = fresh_venv(work / "one-step")
        doc["pip"] = run([py, "-m", "pip", "--version"])[1].split(" from ")[0]
        code, text, seconds = pip(py, f"{wheel}[encryption]")
        one: dict[str, Any] = {"install_s": seconds, "install_ok": code == 0}
        one["after_install"] = check(py)
        code, text, seconds = pip(py, "--force-reinstall", "--no-deps", "apsw-sqlite3mc")
        one["repair_s"] = seconds
        one["after_repair"] = check(py)
        doc["one step"] = one

        py = fresh_venv(work / "two-steps")
        code, text, s1 = pip(py, wheel)
        code2, _text2, s2 = pip(py, f"{wheel}[encryption]")
        two: dict[str, Any] = {"install_s": [s1, s2], "install_ok": code == 0 and code2 == 0}
        two["after_install"] = check(py)
        doc["two steps"] = two
        doc["load_average"] = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    text_out = json.dumps(doc, indent=1)
    print(text_out)
    if args.json:
        import benchio  # (here only: the rest of this script never imports srt)

        benchio.write_text(args.json, text_out + "\n")
    good = doc["two steps"]["after_install"]
    ok = (
        good.get("apsw_is_cipher_build")
        and good.get("encrypted_round_trip")
        and good.get("pip_check") == "ok"
        and doc["one step"]["after_repair"].get("encrypted_round_trip")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
