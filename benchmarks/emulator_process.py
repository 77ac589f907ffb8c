"""Run the CometAPI emulator in a process of its own, so its CPU never counts against the client measured.

Started by the benchmarks; prints one JSON line (``url``, ``cdn_url``, ``api_key``, ``pid``, and with
``--tls`` ``tls_url`` and ``ca_file``) once its listeners are bound, then serves until its standard
input closes; it then prints a second JSON line summarising what it saw, and exits.

``--tls`` adds an HTTPS front (a TLS terminator in this process, forwarding to the API listener) with
a throw-away self-signed ECDSA certificate, so clients pay for TLS as they do against the real API.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import ipaddress
import itertools
import json
import os
import ssl
import sys
import tempfile
import threading
from pathlib import Path

from airflow_provider_veo.testing.emulator import Scenario, VeoEmulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added before every answer")
    parser.add_argument("--api-key", default="bench-key")
    parser.add_argument("--tls", action="store_true", help="also serve the API over HTTPS")
    args = parser.parse_args()
    with (
        VeoEmulator(args.api_key, scenario=Scenario(latency=args.latency)) as emulator,
        tempfile.TemporaryDirectory() as tmp,
    ):
        line = {"url": emulator.url, "cdn_url": emulator.cdn_url, "api_key": args.api_key, "pid": os.getpid()}
        if args.tls:
            cert, key = self_signed(Path(tmp))
            port = int(emulator.url.rsplit(":", 1)[1])
            line["tls_url"] = f"https://127.0.0.1:{tls_terminator(port, cert, key)}"
            line["ca_file"] = str(cert)
        print(json.dumps(line), flush=True)
        sys.stdin.read()  # Returns at EOF: the parent closed the pipe or died.
        print(json.dumps(summary(emulator)), flush=True)


def summary(emulator: VeoEmulator) -> dict[str, object]:
    """What the emulator saw: requests by listener, method and status, retrieve GETs per job, the
    longest gap between two GETs of one job, and how many requests reached the CDN with a key."""
    counts: collections.Counter[str] = collections.Counter()
    gets: dict[str, list[float]] = collections.defaultdict(list)
    cdn_with_key = 0
    for record in emulator.requests:
        counts[f"{record.listener} {record.method} {record.status}"] += 1
        if record.method == "GET" and record.listener != "cdn":
            gets[record.path.split("?", 1)[0]].append(record.at)
        elif record.listener == "cdn" and "authorization" in record.headers:
            cdn_with_key += 1
    gaps = sorted(b - a for times in gets.values() for a, b in itertools.pairwise(times))
    polls = sorted(job.polls for job in emulator.jobs.values())
    return {
        "requests": dict(counts),
        "polls_per_job": polls,
        "poll_gap_max_s": gaps[-1] if gaps else 0.0,
        "poll_gap_p99_s": gaps[int(0.99 * (len(gaps) - 1))] if gaps else 0.0,
        "cdn_requests_with_key": cdn_with_key,
    }


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (ECDSA P-256, as big CDNs serve by default) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "veo-emulator")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def tls_terminator(target_port: int, cert: Path, key: Path) -> int:
    """Accept TLS on a new port and forward each connection's bytes to ``target_port``; return the port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, ssl=context, backlog=2048))
    threading.Thread(target=loop.run_forever, daemon=True, name="tls-terminator").start()
    return server.sockets[0].getsockname()[1]


if __name__ == "__main__":
    main()
