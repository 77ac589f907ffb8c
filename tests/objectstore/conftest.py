"""The object-store group: the provider's public API against real S3, GCS and Azure servers on loopback.

Each server (:mod:`.servers`) starts once per session on a free port, gets an Airflow connection of
the type users set up (``aws`` with ``endpoint_url``, ``google_cloud_platform`` with ``gcs.endpoint``,
``wasb`` with a connection string), and is checked through its own SDK (boto3, google-cloud-storage,
azure-storage-blob), never through the provider's code path under test. Every test writes under a
prefix of its own, so the servers are shared. ``pytest -m objectstore`` selects the group,
``-m "not objectstore"`` leaves it out; without a server its tests skip, saying how to install it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo.testing import VeoEmulator
from airflow_provider_veo.testing.runner import load_dag, migrate_metadata_db

from . import servers

# gcsfs 2026.10 picks, by default, a filesystem that asks each bucket's layout over gRPC before
# opening a file; the GCS emulator speaks only the JSON API, so every open would hang in retries.
# Set before gcsfs is imported; a user of an emulator needs the same.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

DAG_FILE = "veo_objectstore_dags.py"
# dag.test() (Airflow 3.3) runs only DAGs of the DAGs folder, which tests/conftest.py has set up.
shutil.copy(Path(__file__).parent / "dags" / DAG_FILE, os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "objectstore: runs against real S3 (moto_server), GCS (gcp-storage-emulator) and Azure (Azurite) "
        "servers on loopback, installed by scripts/objectstore_servers.sh (select with -m objectstore)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.objectstore)


def dag_named(dag_id: str) -> Any:
    return load_dag(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / DAG_FILE, dag_id)


@dataclass
class Store:
    """A bucket (or container) on one running server, with the Airflow connection that reaches it,
    read back through the store's own SDK."""

    scheme: str
    conn_id: str
    bucket: str
    server: servers.Server
    client: Any
    #: The Airflow connection, as the JSON of an ``AIRFLOW_CONN_<ID>`` variable.
    connection: dict[str, Any] = field(default_factory=dict)

    def uri(self, key: str = "") -> str:
        """The ObjectStoragePath URI users write: ``s3://conn_id@bucket/key``."""
        return f"{self.scheme}://{self.conn_id}@{self.bucket}/{key}"

    def canonical(self, key: str) -> str:
        """The same place without the connection id, as assets and lineage name it."""
        return f"{self.scheme}://{self.bucket}/{key}"

    def objects(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix``: its key and size."""
        if self.scheme == "s3":
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return {obj["Key"]: obj["Size"] for page in pages for obj in page.get("Contents", [])}
        if self.scheme == "gs":
            return {blob.name: blob.size for blob in self.client.list_blobs(self.bucket, prefix=prefix)}
        container = self.client.get_container_client(self.bucket)
        return {blob.name: blob.size for blob in container.list_blobs(name_starts_with=prefix)}

    def chunks(self, key: str) -> Iterator[bytes]:
        if self.scheme == "s3":
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            yield from body.iter_chunks(8 << 20)
        elif self.scheme == "gs":
            with self.client.bucket(self.bucket).blob(key).open("rb", chunk_size=8 << 20) as handle:
                while chunk := handle.read(8 << 20):
                    yield chunk
        else:
            yield from self.client.get_blob_client(self.bucket, key).download_blob().chunks()

    def read(self, key: str) -> bytes:
        return b"".join(self.chunks(key))

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks(key):
            digest.update(chunk)
        return digest.hexdigest()

    def put(self, key: str, data: bytes) -> None:
        if self.scheme == "s3":
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        elif self.scheme == "gs":
            self.client.bucket(self.bucket).blob(key).upload_from_string(data)
        else:
            self.client.get_blob_client(self.bucket, key).upload_blob(data)

    def open_uploads(self, prefix: str) -> list[str]:
        """Uploads started under ``prefix`` and never finished: S3 multipart uploads neither completed
        nor aborted; Azure blobs with staged blocks but none committed. GCS's resumable sessions are
        not listed by any API."""
        if self.scheme == "s3":
            answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
            return [upload["Key"] for upload in answer.get("Uploads", [])]
        if self.scheme == "abfs":
            container = self.client.get_container_client(self.bucket)
            listed = container.list_blobs(name_starts_with=prefix, include=["uncommittedblobs"])
            return [blob.name for blob in listed if blob.name not in self.objects(prefix)]
        raise NotImplementedError(f"{self.scheme} does not list unfinished uploads")


def s3_store(server: servers.Server, conn_id: str, config_kwargs: dict[str, Any] | None = None) -> Store:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=servers.S3_KEY_ID,
        aws_secret_access_key=servers.S3_SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="videos")
    extra: dict[str, Any] = {"endpoint_url": server.url, "region_name": "us-east-1"}
    if config_kwargs:
        extra["config_kwargs"] = config_kwargs
    connection = {
        "conn_type": "aws",
        "login": servers.S3_KEY_ID,
        "password": servers.S3_SECRET,
        "extra": extra,
    }
    return Store("s3", conn_id, "videos", server, client, connection)


def gcs_store(server: servers.Server, conn_id: str) -> Store:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="veo-tests",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": server.url},
    )
    client.create_bucket("videos")
    connection = {
        "conn_type": "google_cloud_platform",
        "extra": {"project": "veo-tests", "is_anonymous": True, "gcs.endpoint": server.url},
    }
    return Store("gs", conn_id, "videos", server, client, connection)


def azure_store(server: servers.Server, conn_id: str) -> Store:
    from azure.storage.blob import BlobServiceClient

    connection_string = servers.azurite_connection_string(server)
    client = BlobServiceClient.from_connection_string(connection_string)
    client.create_container("videos")
    connection = {"conn_type": "wasb", "extra": {"connection_string": connection_string}}
    return Store("abfs", conn_id, "videos", server, client, connection)


def connect(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the store's connection id at it, for the tasks that ``dag.test()`` runs in this process."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{store.conn_id.upper()}", json.dumps(store.connection))


@pytest.fixture(scope="session")
def metadata_db() -> None:
    migrate_metadata_db()


@pytest.fixture
def emulator(metadata_db: None, veo_emulator: VeoEmulator) -> VeoEmulator:
    """The CometAPI emulator that ``veo_default`` points at: the provider's own fixture."""
    return veo_emulator


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("objectstore-servers")


def _started(start: Any, workdir: Path) -> Iterator[servers.Server]:
    workdir.mkdir(exist_ok=True)
    server = start(workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(servers_dir: Path) -> Iterator[servers.Server]:
    yield from _started(servers.start_s3, servers_dir / "s3")


@pytest.fixture(scope="session")
def gcs_server(servers_dir: Path) -> Iterator[servers.Server]:
    yield from _started(servers.start_gcs, servers_dir / "gcs")


@pytest.fixture(scope="session")
def azure_server(servers_dir: Path) -> Iterator[servers.Server]:
    yield from _started(servers.start_azurite, servers_dir / "azure")


@pytest.fixture(scope="session")
def s3(s3_server: servers.Server) -> Store:
    # moto assembles a completed multipart upload in Python, silently: 1 GiB can outlast botocore's 60 s
    # read timeout on a loaded machine, and the retried complete then fails on moto's half-disposed
    # upload. AWS keeps a long complete's connection alive with whitespace, so no client times it out.
    return s3_store(s3_server, "veo_os_s3", {"read_timeout": 600})


@pytest.fixture(scope="session")
def gcs(gcs_server: servers.Server) -> Store:
    return gcs_store(gcs_server, "veo_os_gcs")


@pytest.fixture(scope="session")
def azure(azure_server: servers.Server) -> Store:
    return azure_store(azure_server, "veo_os_azure")


@pytest.fixture(params=["s3", "gcs", "azure"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Each store in turn, connected."""
    chosen: Store = request.getfixturevalue(request.param)
    connect(chosen, monkeypatch)
    return chosen


@pytest.fixture
def prefix() -> str:
    """A folder of this test's own, so tests sharing a server never see each other's objects."""
    return f"run-{uuid.uuid4().hex[:12]}/"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report gets the tails of the servers' logs."""
    report = yield
    if report.failed and call.when == "call":
        for name in ("s3_server", "gcs_server", "azure_server"):
            server = getattr(item, "funcargs", {}).get(name)
            if isinstance(server, servers.Server):
                report.sections.append((f"{server.name} log (tail)", server.log_tail()))
    return report
