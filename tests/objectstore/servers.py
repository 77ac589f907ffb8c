"""The object-store servers of the group, each a real process on a free loopback port.

They come from the package registries, installed by ``scripts/objectstore_servers.sh`` the way a
developer would: ``moto_server`` (S3) and ``gcp-storage-emulator`` (GCS) from PyPI into the venv,
Azurite from npm into ``.objectstore-servers/``. A missing one makes its tests skip, saying how to
install it. Readiness is polled against a deadline that a busy 2-core machine meets with room to spare.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "install it with `bash scripts/objectstore_servers.sh`"
#: Where the install script puts Azurite (npm); VEO_AZURITE_BLOB names another azurite-blob.
AZURITE_PREFIX = ROOT / ".objectstore-servers"
#: Each server starts in under 8 s on an idle machine; this leaves room for a loaded one.
START_DEADLINE = 90.0

#: Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: moto accepts any credentials; these only have to be present for botocore to sign.
S3_KEY_ID = "testing"
S3_SECRET = "testing"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _venv_tool(name: str) -> str | None:
    """A console script of this venv (beside its python), else one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def azurite_blob() -> str | None:
    explicit = os.environ.get("VEO_AZURITE_BLOB")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    local = AZURITE_PREFIX / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


@dataclass
class Server:
    """One running server process, in its own process group so that signals reach all of it."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and nothing answers, as a hung store."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start(name: str, command: list[str], port: int, ready_path: str, workdir: Path) -> Server:
    """Start ``command`` in ``workdir`` and return once ``ready_path`` answers any HTTP status."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + START_DEADLINE
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            requests.get(server.url + ready_path, timeout=5)
            return server
        except (requests.ConnectionError, requests.Timeout):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not answer within {START_DEADLINE:.0f} s:\n{server.log_tail()}")
        time.sleep(0.2)


def start_s3(workdir: Path) -> Server:
    tool = _venv_tool("moto_server")
    if tool is None:
        pytest.skip(f"moto_server (PyPI moto[server]) is not installed: {INSTALL_HINT}")
    port = free_port()
    return start("moto_server", [tool, "-H", "127.0.0.1", "-p", str(port)], port, "/moto-api/", workdir)


def start_gcs(workdir: Path) -> Server:
    tool = _venv_tool("gcp-storage-emulator")
    if tool is None:
        pytest.skip(f"gcp-storage-emulator (PyPI) is not installed: {INSTALL_HINT}")
    port = free_port()
    # On disk (in workdir), not in memory: the large videos would otherwise sit in its heap.
    command = [tool, "start", "--host", "127.0.0.1", "--port", str(port), "--quiet"]
    return start("gcp-storage-emulator", command, port, "/storage/v1/b", workdir)


def start_azurite(workdir: Path) -> Server:
    tool = azurite_blob()
    if tool is None:
        pytest.skip(f"azurite-blob (npm azurite) is not installed: {INSTALL_HINT}")
    port = free_port()
    command = [
        tool,
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(workdir / "azurite"),
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
    ]
    return start("azurite-blob", command, port, f"/{AZURITE_ACCOUNT}?comp=list", workdir)


def azurite_connection_string(server: Server) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={server.url}/{AZURITE_ACCOUNT};"
    )
