"""A throwaway PgBouncer in front of a PostgreSQL server, for tests.

::

    python src/srt/testing/pgbouncer.py start DIR URL   # prints PgBouncer's URL
    python src/srt/testing/pgbouncer.py stop DIR        # stops it and removes DIR

    with PgBouncer(upstream_url) as bouncer:            # the same from Python
        url = bouncer.url

PgBouncer runs in ``pool_mode = transaction`` (by default) with small pools
(``default_pool_size = 2``), so the server connections behind it really are shared
between its clients: a session setting, a session-level advisory lock or a server-side
prepared statement made by one client reaches another, or is lost. Every database name
is passed on to the upstream server (``* =`` in ``[databases]``) as the upstream URL's
user; authentication is ``trust`` (the test server's own), so the auth file names the
user with no password. It listens on a free port of 127.0.0.1 and on a unix socket in
``DIR/sock``; ``DIR`` is 0700, its config and auth file 0600. PgBouncer refuses to run as
root, so under root it runs as the account ``pgserver.py`` runs PostgreSQL as, which
owns ``DIR``.

The binary is ``$SRT_TEST_PGBOUNCER``, else ``pgbouncer`` on the PATH, else
``/usr/sbin/pgbouncer`` (Debian's package); none of them is an error saying how to
install it (``.ci/run`` does). Standard library only, no srt import beyond
``pgserver.py``'s helpers. Nothing here listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import parse_qsl, unquote, urlsplit

if __package__:
    from .pgserver import _free_port, _os_user, _private_dirs, _private_file
else:  # run as a script: pgserver.py is beside this file, on sys.path
    from pgserver import (  # type: ignore[import-not-found,no-redef]
        _free_port,
        _os_user,
        _private_dirs,
        _private_file,
    )

__all__ = ["PgBouncer", "find_pgbouncer"]

#: Debian's package installs it here, off a non-root user's PATH.
DEBIAN_PATH = "/usr/sbin/pgbouncer"
INSTALL = (
    "PgBouncer is not installed: apt-get install -y --no-install-recommends pgbouncer "
    "(.ci/run does), or set SRT_TEST_PGBOUNCER to its binary"
)


def find_pgbouncer() -> str:
    """The ``pgbouncer`` binary; ``RuntimeError`` saying how to install it if none."""
    env = os.environ.get("SRT_TEST_PGBOUNCER")
    if env:
        if not os.access(env, os.X_OK):
            raise RuntimeError(f"SRT_TEST_PGBOUNCER={env} is not an executable; {INSTALL}")
        return env
    found = shutil.which("pgbouncer")
    if found:
        return found
    if os.access(DEBIAN_PATH, os.X_OK):
        return DEBIAN_PATH
    raise RuntimeError(INSTALL)


def _upstream(url: str) -> tuple[str, str, str]:
    """The host (a socket directory or an address), port and user of a libpq URL."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or parts.hostname or "127.0.0.1"
    port = query.get("port") or (str(parts.port) if parts.port else "5432")
    user = query.get("user") or unquote(parts.username or "") or "postgres"
    return host, port, user


class PgBouncer:
    """One PgBouncer in ``root`` (a new temporary directory by default) in front of the
    server at ``upstream`` (a ``postgresql://`` URL). ``url_for(db)`` is the URL of
    database ``db`` through it (unix socket); ``url`` that of the upstream's database.
    ``settings`` adds (or overrides) ``[pgbouncer]`` lines."""

    def __init__(
        self,
        upstream: str,
        root: str | None = None,
        *,
        pool_mode: str = "transaction",
        pool_size: int = 2,
        binary: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.binary = binary or find_pgbouncer()
        self.owned_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="srt-pgb-", dir="/tmp")
        self.sock = os.path.join(self.root, "sock")
        self.config = os.path.join(self.root, "pgbouncer.ini")
        self.log = os.path.join(self.root, "pgbouncer.log")
        self.pidfile = os.path.join(self.root, "pgbouncer.pid")
        self.host, self.upstream_port, self.user = _upstream(upstream)
        self.dbname = urlsplit(upstream).path.lstrip("/") or "postgres"
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.settings = settings or {}
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._user = _os_user()

    def __repr__(self) -> str:
        return f"<PgBouncer root={self.root!r} port={self.port} mode={self.pool_mode}>"

    def __enter__(self) -> PgBouncer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}@/{dbname}?host={self.sock}&port={self.port}"

    def _chown(self, path: str) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _write(self, path: str, text: str) -> None:
        with _private_file(path) as f:
            f.write(text)
        self._chown(path)

    def _configure(self) -> None:
        for p in _private_dirs(self.root):
            self._chown(p)
        os.makedirs(self.sock, mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)
        for p in (self.root, self.sock):
            self._chown(p)
        users = os.path.join(self.root, "userlist.txt")
        self._write(users, f'"{self.user}" ""\n')
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": self.sock,
            "auth_type": "trust",
            "auth_file": users,
            "pool_mode": self.pool_mode,
            "default_pool_size": str(self.pool_size),
            "min_pool_size": "0",
            "reserve_pool_size": "0",
            "max_client_conn": "500",
            "max_db_connections": str(self.pool_size),
            "logfile": self.log,
            "pidfile": self.pidfile,
            "admin_users": self.user,
            # psycopg sends none of these; other clients' drivers may
            "ignore_startup_parameters": "extra_float_digits",
            "server_login_retry": "1",
            **self.settings,
        }
        lines = [
            "[databases]",
            f"* = host={self.host} port={self.upstream_port} user={self.user}",
            "[pgbouncer]",
            *(f"{k} = {v}" for k, v in settings.items()),
        ]
        self._write(self.config, "\n".join(lines) + "\n")

    def start(self, timeout: float = 30.0) -> None:
        """Write the config and start PgBouncer on a free port; wait until it accepts."""
        last = ""
        for _ in range(5):  # a free port can be taken between probe and bind
            self.port = _free_port()
            self._configure()
            kw: dict[str, object] = {}
            if self._user is not None:
                kw = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
            self._proc = subprocess.Popen(  # type: ignore[call-overload]
                [self.binary, self.config],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                **kw,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._proc.poll() is None:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", self.port), timeout=1),
                ):
                    return
                time.sleep(0.02)
            last = self.log_tail()
            self._halt()
        raise RuntimeError(f"PgBouncer did not start: {last}")

    def detach(self) -> None:
        """Leave PgBouncer running past this object: ``stop()`` on a ``PgBouncer`` made
        with the same ``root`` ends it by its pid file."""
        self._proc = None

    def _halt(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SIGTERM: immediate shutdown
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self, *, remove: bool | None = None) -> None:
        """Stop PgBouncer (if running); remove ``root`` if this object created it."""
        if self._proc is not None:
            self._halt()
        else:  # started by another process (the command line): its pid file
            with contextlib.suppress(OSError, ValueError):
                with open(self.pidfile, encoding="ascii") as f:
                    pid = int(f.read().strip())
                os.kill(pid, signal.SIGTERM)
                for _ in range(500):
                    os.kill(pid, 0)  # OSError once it is gone
                    time.sleep(0.02)
        if self.owned_root if remove is None else remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError), open(self.log, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
        return ""


def _main(argv: list[str]) -> int:
    if (argv[:1], len(argv)) not in ((["start"], 3), (["stop"], 2)):
        sys.stderr.write("usage: pgbouncer.py start DIR URL | stop DIR\n")
        return 2
    if argv[0] == "start":
        bouncer = PgBouncer(argv[2], argv[1])
        bouncer.start()
        bouncer.detach()  # left running: ``stop DIR`` ends it by its pid file
        print(bouncer.url)
    else:
        PgBouncer("postgresql://", argv[1], binary="pgbouncer").stop(remove=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
