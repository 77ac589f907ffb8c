"""PostgreSQL and Redis from Debian's packages, started as plain processes for one test session.

No system service is used or needed: each server runs on 127.0.0.1 on a free port, with its data in
a temporary folder, its output in a log file next to the Airflow processes' logs, and is stopped
(and its folder removed) at the end. PostgreSQL refuses to run as root: as root, its folder is
handed to the ``postgres`` user the Debian package creates, and its commands run as that user.
``bash scripts/install_ci_system_packages.sh`` installs both packages.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .stack import free_port, tail

#: PostgreSQL's role and database for Airflow's metadata.
PG_USER = "airflow"
PG_DATABASE = "airflow"
#: The OS user postgres runs as when the tests run as root (created by Debian's postgresql package).
PG_OS_USER = os.environ.get("VEO_POSTGRES_OS_USER", "postgres")


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (``VEO_POSTGRES_BIN`` overrides)."""
    if override := os.environ.get("VEO_POSTGRES_BIN"):
        return Path(override)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    return Path(found[-1]).parent if found else None


def redis_server() -> str | None:
    return os.environ.get("VEO_REDIS_SERVER") or shutil.which("redis-server")


def missing_services() -> list[str]:
    """What the Celery group needs from the system and does not find."""
    missing = []
    if postgres_bin() is None:
        missing.append("postgresql")
    if redis_server() is None:
        missing.append("redis-server")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_OS_USER)
        except KeyError:
            missing.append(f"the {PG_OS_USER!r} user to run postgres as")
    return missing


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s:\n{tail(log)}")


def _stop(process: subprocess.Popen[bytes], sig: int, timeout: float = 30) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(15)


class PostgresServer:
    """``initdb`` + ``postgres`` in a temporary folder, reachable at :attr:`url` with trust auth."""

    def __init__(self, log: Path) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (bash scripts/install_ci_system_packages.sh)")
        self.bin = bin_dir
        self.log = log
        self.port = free_port()
        # Its own top-level temporary folder: the postgres user must be able to reach it.
        self.folder = Path(tempfile.mkdtemp(prefix="veo-postgres-"))
        self.data = self.folder / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self.user = PG_OS_USER if os.geteuid() == 0 else None
        if self.user:
            account = pwd.getpwnam(self.user)
            os.chown(self.folder, account.pw_uid, account.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def _run(self, *argv: str) -> None:
        with self.log.open("ab") as out:
            subprocess.run(
                argv, user=self.user, cwd=self.folder, stdout=out, stderr=subprocess.STDOUT, check=True
            )

    def start(self) -> PostgresServer:
        self._run(
            str(self.bin / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            PG_USER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-instructions",
        )
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.folder}",
                    "-c",
                    "max_connections=300",
                    # A throw-away test database: durability costs disk flushes and proves nothing here.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                user=self.user,
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait_port(self.port, self.process, self.log)
        deadline = time.monotonic() + 60
        while True:
            try:
                self._run(
                    str(self.bin / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    PG_USER,
                    PG_DATABASE,
                )
                break
            except subprocess.CalledProcessError:  # Still starting up ("the database system is starting up").
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        return self

    def dump(self, path: Path) -> Path:
        """``pg_dump`` of the whole database, as plain SQL, to ``path``."""
        with path.open("wb") as out:
            subprocess.run(
                [
                    str(self.bin / "pg_dump"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    PG_USER,
                    "--no-owner",
                    PG_DATABASE,
                ],
                stdout=out,
                stderr=subprocess.PIPE,
                check=True,
                timeout=300,
            )
        return path

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, then exit), then remove the folder."""
        if self.process is not None:
            _stop(self.process, signal.SIGINT)
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisServer:
    """``redis-server`` on loopback without persistence, its working folder temporary."""

    def __init__(self, log: Path) -> None:
        binary = redis_server()
        if binary is None:
            raise RuntimeError("redis-server is not installed (bash scripts/install_ci_system_packages.sh)")
        self.binary = binary
        self.log = log
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="veo-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.folder),
                    "--daemonize",
                    "no",
                ],
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait_port(self.port, self.process, self.log)
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, signal.SIGTERM)
        shutil.rmtree(self.folder, ignore_errors=True)
