"""A throwaway PostgreSQL server from this machine's binaries, for tests and benchmarks.

::

    python src/srt/testing/pgserver.py start DIR   # prints the server's URL
    python src/srt/testing/pgserver.py stop DIR    # stops it and removes DIR

    with PgServer() as pg:                          # the same from Python
        url = pg.url

``initdb`` into ``DIR/data`` (trust authentication, superuser ``srt``), then ``pg_ctl
start`` on a free port of 127.0.0.1 and on a unix socket in ``DIR/sock``. PostgreSQL
refuses to run as root, so under root the server runs as ``$SRT_PG_OS_USER`` (an
account that does not exist is an error naming the variable), else the ``postgres``
account, else ``nobody``, and ``DIR`` is handed to it. The binaries are
``$SRT_PG_BINDIR``, else ``pg_config --bindir``, else the newest
``/usr/lib/postgresql/*/bin``.

Standard library only, and no srt import, so ``.ci/run`` can run this file with the
system Python before anything is installed. Nothing here listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

__all__ = ["PgServer", "find_bindir"]

#: Settings for every throwaway server: loopback only, enough connections for the
#: 8 x 8 scale run, and nothing that waits on the shared machine's clock.
BASE_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "log_min_messages": "fatal",
    "log_min_error_statement": "panic",
    "logging_collector": "off",
}
#: Extra settings for tests: no fsync (data survives any process or server crash,
#: only an OS crash would lose it, and a test server never outlives one).
FAST_SETTINGS: dict[str, str] = {"fsync": "off", "full_page_writes": "off"}
SUPERUSER = "srt"


def find_bindir() -> str:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    env = os.environ.get("SRT_PG_BINDIR")
    if env:
        return env
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
            if os.path.exists(os.path.join(out, "initdb")):
                return out
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "no PostgreSQL server binaries found: install PostgreSQL or set SRT_PG_BINDIR"
        )
    return os.path.dirname(found[-1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _os_user() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    asked = os.environ.get("SRT_PG_OS_USER")
    if asked:  # named on purpose: a typo is told, not passed over for another account
        try:
            return pwd.getpwnam(asked)
        except KeyError:
            raise RuntimeError(
                f"SRT_PG_OS_USER names no account on this machine ({asked!r}): set it to "
                "an existing unprivileged account for the server to run as, or unset it "
                "(then postgres, else nobody)"
            ) from None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and no unprivileged account (postgres, nobody) exists")


class PgServer:
    """One PostgreSQL cluster in ``root`` (a new temporary directory by default).

    ``fast=True`` turns fsync off (for tests). ``settings`` adds ``postgresql.conf``
    lines. ``url`` connects over the unix socket, ``tcp_url`` over 127.0.0.1.
    """

    def __init__(
        self,
        root: str | None = None,
        *,
        fast: bool = True,
        settings: dict[str, str] | None = None,
        bindir: str | None = None,
    ) -> None:
        self._user = _os_user()  # (first: an error here leaves no directory behind)
        self.owned_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="srt-pg-")
        self.bindir = bindir or find_bindir()
        self.data = os.path.join(self.root, "data")
        self.sock = os.path.join(self.root, "sock")
        self.log = os.path.join(self.root, "server.log")
        self.settings = {**BASE_SETTINGS, **(FAST_SETTINGS if fast else {}), **(settings or {})}
        self.port = 0

    def __repr__(self) -> str:
        return f"<PgServer root={self.root!r} port={self.port}>"

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    @property
    def tcp_url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.sock}&port={self.port}"

    # -- processes -------------------------------------------------------------

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kw: dict[str, Any] = {}
        if self._user is not None:
            kw = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        return subprocess.run(
            [os.path.join(self.bindir, args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=check,
            cwd=self.root,
            **kw,
        )

    def _chown(self, path: str) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _check_reachable(self) -> None:
        """Under root, the server's account must be able to reach ``root``."""
        if self._user is None:
            return
        parent = os.path.dirname(os.path.abspath(self.root))
        while parent != os.path.dirname(parent):
            st = os.stat(parent)
            if st.st_uid != self._user.pw_uid and not st.st_mode & 0o001:
                raise RuntimeError(
                    f"{parent} is not searchable by {self._user.pw_name!r}, which runs the "
                    "server; put the server's directory elsewhere (e.g. under /tmp)"
                )
            parent = os.path.dirname(parent)

    def init(self) -> None:
        """Create the cluster (``initdb``) unless ``root/data`` already holds one."""
        if os.path.exists(os.path.join(self.data, "PG_VERSION")):
            return
        for p in _private_dirs(self.root):  # the server's account owns what is made for it
            self._chown(p)
        self._check_reachable()
        os.makedirs(self.sock, mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)
        for p in (self.root, self.sock):
            self._chown(p)
        try:
            self._run(
                "initdb",
                "-D",
                self.data,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr.strip()}") from exc

    def start(self) -> None:
        """``initdb`` if needed, then start on a free port and wait until it accepts."""
        self.init()
        last = ""
        for _ in range(5):  # a free port can be taken between probe and bind
            self.port = self.port or _free_port()
            conf = dict(
                self.settings, port=str(self.port), unix_socket_directories=f"'{self.sock}'"
            )
            with _private_file(os.path.join(self.data, "postgresql.auto.conf")) as f:
                f.writelines(f"{k} = {v}\n" for k, v in conf.items())
            self._chown(os.path.join(self.data, "postgresql.auto.conf"))
            done = self._run(
                "pg_ctl", "start", "-w", "-t", "60", "-D", self.data, "-l", self.log, check=False
            )
            if done.returncode == 0:
                return
            last = done.stderr.strip() + "\n" + self.log_tail()
            self.port = 0
        raise RuntimeError(f"PostgreSQL did not start: {last}")

    def stop(self, mode: str = "fast", *, remove: bool | None = None) -> None:
        """Stop the server (if running); remove ``root`` if this object created it."""
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", self.data, check=False)
        if self.owned_root if remove is None else remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self, mode: str = "immediate") -> None:
        """``pg_ctl restart -m MODE`` on the same port (``immediate``: a crash restart)."""
        self._run(
            "pg_ctl", "restart", "-w", "-t", "60", "-m", mode, "-D", self.data, "-l", self.log
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self._run(
                    "pg_isready", "-h", self.sock, "-p", str(self.port), check=False
                ).returncode
                == 0
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("PostgreSQL is not accepting connections")

    def log_tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError), open(self.log, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
        return ""


def _private_dirs(path: str) -> list[str]:
    """Make ``path`` and its missing parents 0700 whatever the umask; the folders made,
    outermost first (``path`` is left for the caller, which sets its mode itself)."""
    missing = []
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    made = []
    for p in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(p, 0o700)
            os.chmod(p, 0o700)
            made.append(p)
    return made


def _private_file(path: str) -> Any:
    """``path`` opened for writing text, created (or truncated) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        sys.stderr.write("usage: pgserver.py start|stop DIR\n")
        return 2
    command, root = argv
    if command == "start":
        server = PgServer(root)
        server.start()
        with _private_file(os.path.join(root, "port")) as f:
            f.write(str(server.port))
        print(server.url)
    else:
        server = PgServer(root)
        server.stop(remove=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
