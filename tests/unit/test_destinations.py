"""Where videos go (the Destination value), and how they get there all-or-nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_veo.api import VeoInputError, video_filename
from airflow_provider_veo.destinations import (
    Destination,
    ObjectStoreDestination,
    VeoStorageError,
    parse_destination,
)

VIDEO_ID = "veo3.1:1764905797-816jUFZAkM"


@pytest.fixture
def fake_store(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Attach, for a protocol, an in-memory filesystem that has the attributes a real one would
    (``endpoint_url`` of s3fs, ``account_name`` of adlfs): ``fake_store("s3", endpoint_url=...)``."""
    from airflow.sdk.io import attach, store
    from fsspec.implementations.memory import MemoryFileSystem

    monkeypatch.setattr(store, "_STORE_CACHE", {})

    def attach_fake(protocol: str, **attributes: Any) -> Any:
        filesystem = MemoryFileSystem(skip_instance_cache=True)
        for name, value in attributes.items():
            object.__setattr__(filesystem, name, value)
        attach(protocol=protocol, fs=filesystem)
        return filesystem

    return attach_fake


def resolve_destination(destination: object, video_id: str) -> Any:
    """The local path (or the destination, for an object store) a video goes to."""
    target = parse_destination(destination).file_for(video_id)  # type: ignore[arg-type]
    return getattr(target, "path", target)


def StagedFile(target: Path | Destination) -> Any:
    return (target if isinstance(target, Destination) else parse_destination(str(target))).stage()


def test_existing_folder_gets_safe_name(tmp_path: Path) -> None:
    assert resolve_destination(str(tmp_path), VIDEO_ID) == tmp_path / video_filename(VIDEO_ID)


def test_trailing_slash_is_a_folder_even_if_missing(tmp_path: Path) -> None:
    target = resolve_destination(f"{tmp_path}/new/sub/", VIDEO_ID)
    assert target == tmp_path / "new" / "sub" / video_filename(VIDEO_ID)
    assert ":" not in target.name


def test_file_path_kept(tmp_path: Path) -> None:
    assert resolve_destination(tmp_path / "clip.mp4", VIDEO_ID) == tmp_path / "clip.mp4"


def test_file_uri(tmp_path: Path) -> None:
    assert resolve_destination(f"file://{tmp_path}/clip.mp4", VIDEO_ID) == tmp_path / "clip.mp4"
    folder = resolve_destination(f"file://{tmp_path}/out/", VIDEO_ID)
    assert folder == tmp_path / "out" / video_filename(VIDEO_ID)
    assert isinstance(folder, Path)


def test_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = resolve_destination("videos/clip.mp4", VIDEO_ID)
    assert target == Path("videos/clip.mp4")
    staged = StagedFile(target)
    with staged as sink:
        sink.write(b"data")
        staged.publish()
    assert (tmp_path / "videos" / "clip.mp4").read_bytes() == b"data"


def test_relative_uri_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    staged = StagedFile(resolve_destination("videos/", VIDEO_ID))
    with staged as sink:
        sink.write(b"data")
        staged.publish()
    assert staged.uri == str((tmp_path / "videos" / video_filename(VIDEO_ID)).resolve())
    assert Path(staged.uri).read_bytes() == b"data"


@pytest.mark.parametrize("destination", ["", "   ", None])
def test_empty_destination_refused(destination: str | None) -> None:
    with pytest.raises(VeoInputError) as info:
        resolve_destination(destination, VIDEO_ID)  # type: ignore[arg-type]
    assert info.value.field == "destination"


def test_staged_file_publishes_atomically(tmp_path: Path) -> None:
    target = tmp_path / "out" / "clip.mp4"
    staged = StagedFile(target)
    with staged as sink:
        sink.write(b"first half ")
        assert not target.exists(), "visible before it was complete"
        part_files = [p for p in target.parent.iterdir() if p.name.endswith(".part")]
        assert len(part_files) == 1 and part_files[0].name.startswith(".clip.mp4.")
        sink.write(b"second half")
        staged.publish()
        assert target.read_bytes() == b"first half second half"
    assert sorted(os.listdir(target.parent)) == ["clip.mp4"]
    assert staged.uri == str(target.resolve())


def test_staged_file_replaces_an_old_file(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")
    staged = StagedFile(target)
    with staged as sink:
        sink.write(b"new")
        assert target.read_bytes() == b"old"
        staged.publish()
    assert target.read_bytes() == b"new"


def test_staged_file_leaves_nothing_on_exception(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError, match="broke"), StagedFile(target) as sink:
        sink.write(b"partial")
        raise RuntimeError("broke")
    assert list(tmp_path.iterdir()) == []


def test_staged_file_not_published_leaves_nothing(tmp_path: Path) -> None:
    with StagedFile(tmp_path / "clip.mp4") as sink:
        sink.write(b"partial")
    assert list(tmp_path.iterdir()) == []


def test_staged_file_keeps_old_file_on_exception(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), StagedFile(target) as sink:
        sink.write(b"partial")
        raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    assert target.read_bytes() == b"old"


def test_unwritable_folder_is_an_input_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(VeoInputError) as info, StagedFile(blocker / "sub" / "clip.mp4"):
        pass
    assert info.value.field == "destination"


# --------------------------------------------------------------------------------------------
# Object stores (fsspec's memory filesystem stands in for s3:// or gs://)
# --------------------------------------------------------------------------------------------


def memory_fs() -> Any:
    """The in-memory filesystem the ``memory_bucket`` fixture attached."""
    from airflow.sdk.io import attach

    return attach("memory").fs


def test_object_store_folder_gets_safe_name(memory_bucket: str) -> None:
    target = parse_destination(f"memory://{memory_bucket}/videos/").file_for(VIDEO_ID)
    assert target.name == video_filename(VIDEO_ID)
    assert target.uri == f"memory://{memory_bucket}/videos/{video_filename(VIDEO_ID)}"
    assert parse_destination(f"memory://{memory_bucket}/a/clip.mp4").file_for(VIDEO_ID).name == "clip.mp4"


def test_object_store_upload_only_on_publish_with_one_whole_file_put(
    memory_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import ObjectStoragePath

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the staged bytes go
    fs = memory_fs()
    opened_for_writing: list[str] = []
    real_open = fs.open

    def spying_open(path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "w" in mode:
            opened_for_writing.append(path)
        return real_open(path, mode, **kwargs)

    monkeypatch.setattr(fs, "open", spying_open)
    puts: list[tuple[str, str]] = []
    real_put = fs.put_file
    monkeypatch.setattr(
        fs,
        "put_file",
        lambda lpath, rpath, **kw: (puts.append((lpath, rpath)), real_put(lpath, rpath, **kw))[1],
    )
    target = parse_destination(f"memory://{memory_bucket}/videos/").file_for(VIDEO_ID)
    staged = target.stage()
    with staged as sink:
        sink.write(b"all of it")
        assert not fs.exists(f"/{memory_bucket}/videos/{target.name}")
        [part] = tmp_path.iterdir()
        assert part.name.startswith(".veo-") and part.name.endswith(".part")
        staged.publish()
    assert puts == [(str(part), f"/{memory_bucket}/videos/{target.name}")]
    # The generic put_file opens the key itself; the provider never writes through a file object.
    assert opened_for_writing in ([], [f"/{memory_bucket}/videos/{target.name}"])
    assert ObjectStoragePath(staged.uri).read_bytes() == b"all of it"
    assert list(tmp_path.iterdir()) == []


def test_object_store_nothing_on_exception(
    memory_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    target = parse_destination(f"memory://{memory_bucket}/videos/clip.mp4")
    with pytest.raises(RuntimeError), target.stage() as sink:
        sink.write(b"partial")
        raise RuntimeError
    assert not memory_fs().exists(f"/{memory_bucket}/videos/clip.mp4")
    assert list(tmp_path.iterdir()) == []


class _StoreFails:
    """A put_file that uploads part of the file, as a multipart upload does, then fails before its
    commit: like s3fs, gcsfs and adlfs, it leaves nothing at the key."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.sent = 0

    def __call__(self, lpath: str, rpath: str, **kwargs: Any) -> None:
        with open(lpath, "rb") as source:
            self.sent = len(source.read(4))
        raise self.error


@pytest.mark.parametrize(
    ("error", "retryable", "words"),
    [
        (ConnectionError("Could not connect to the endpoint URL"), True, "did not take the write"),
        (TimeoutError("read timed out"), True, "did not take the write"),
        (PermissionError("Access Denied"), False, "may not write"),
        # A "not found" with the bucket there (an upload or a part gone): the store's error, no guess.
        (FileNotFoundError("NoSuchUpload"), True, "did not take the write"),
    ],
)
def test_a_store_failing_mid_upload_leaves_the_old_object_and_says_so(
    memory_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    retryable: bool,
    words: str,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fs = memory_fs()
    fs.pipe_file(f"/{memory_bucket}/videos/clip.mp4", b"the old video")
    failing = _StoreFails(error)
    monkeypatch.setattr(fs, "put_file", failing)
    target = parse_destination(f"memory://{memory_bucket}/videos/clip.mp4")
    with pytest.raises(VeoStorageError) as info:
        target.write_bytes(b"the new video, whole")
    assert failing.sent == 4
    assert info.value.retryable is retryable
    assert words in str(info.value) and target.uri in str(info.value)
    assert "nothing was left there" in str(info.value)
    assert fs.cat_file(f"/{memory_bucket}/videos/clip.mp4") == b"the old video"
    assert fs.ls(f"/{memory_bucket}/videos", detail=False) == [f"/{memory_bucket}/videos/clip.mp4"]
    assert list(tmp_path.iterdir()) == []


def test_a_missing_bucket_is_named_only_once_the_store_says_it_is_missing(
    memory_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fs = memory_fs()
    monkeypatch.setattr(fs, "put_file", _StoreFails(FileNotFoundError("NoSuchBucket")))
    with pytest.raises(VeoStorageError) as info:
        parse_destination(f"memory://{memory_bucket}/videos/clip.mp4").write_bytes(b"video")
    assert "does not exist" in str(info.value) and not info.value.retryable


def test_an_upload_the_store_reports_failed_but_that_is_whole_at_the_key_is_stored(
    memory_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A retried commit fails once the first one did its work: the object at the key, whole."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fs = memory_fs()
    put_file = fs.put_file

    def commit_then_fail(lpath: str, rpath: str, **kwargs: Any) -> None:
        put_file(lpath, rpath)
        raise FileNotFoundError("NoSuchUpload: the upload was completed or aborted")

    monkeypatch.setattr(fs, "put_file", commit_then_fail)
    target = parse_destination(f"memory://{memory_bucket}/videos/clip.mp4")
    assert target.write_bytes(b"the video, whole") == target.uri
    assert fs.cat_file(f"/{memory_bucket}/videos/clip.mp4") == b"the video, whole"
    assert "NoSuchUpload" in caplog.text and "whole (16 bytes)" in caplog.text
    assert list(tmp_path.iterdir()) == []


class _HungStore:
    """An async filesystem whose upload starts (an S3 multipart upload, noted by botocore's hook as
    s3fs's is) and then waits for a server that never answers; it would commit if it ever went on."""

    def __new__(cls, *, s3: bool) -> Any:
        from aiobotocore.hooks import AioHierarchicalEmitter
        from fsspec.asyn import AsyncFileSystem

        class HungStore(AsyncFileSystem):  # type: ignore[misc]
            protocol = ("s3", "s3a")

            def __init__(self) -> None:
                super().__init__(skip_instance_cache=True)
                self.objects: dict[str, bytes] = {}
                self.cancelled = False
                self.aborted: list[tuple[str, str, str]] = []
                self.uploading = __import__("threading").Event()
                self.s3 = SimpleNamespace(meta=SimpleNamespace(events=AioHierarchicalEmitter()))

            async def _put_file(self, lpath: str, rpath: str, **kwargs: Any) -> None:
                bucket, _, key = rpath.partition("/")
                parsed = {"Bucket": bucket, "Key": key, "UploadId": "upload-1"}
                await self.s3.meta.events.emit("after-call.s3.CreateMultipartUpload", parsed=parsed)
                self.uploading.set()
                try:
                    await asyncio.Event().wait()  # the server hangs
                except asyncio.CancelledError:
                    self.cancelled = True
                    raise
                self.objects[rpath] = Path(lpath).read_bytes()

            async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
                if path not in self.objects:
                    raise FileNotFoundError(path)
                return {"name": path, "size": len(self.objects[path]), "type": "file"}

        if s3:

            async def set_session(self: Any) -> None:
                pass

            async def _abort_mpu(self: Any, bucket: str, key: str, upload_id: str) -> None:
                self.aborted.append((bucket, key, upload_id))

            HungStore.set_session = set_session
            HungStore._abort_mpu = _abort_mpu
        return HungStore()


@pytest.mark.parametrize("s3", [True, False], ids=["s3", "azure-like"])
def test_an_upload_interrupted_by_the_execution_timeout_is_cancelled_and_aborted(
    fake_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3: bool
) -> None:
    """Airflow's execution_timeout (a SIGALRM raising in the task's thread) while the store hangs: the
    upload's coroutine on fsspec's IO loop is cancelled, not left to commit later; the multipart upload
    it started is aborted; the timeout stays a timeout; the staged file is gone."""
    from airflow.sdk.execution_time.timeout import timeout
    from airflow.sdk.io import attach

    from airflow_provider_veo.compat import AirflowTaskTimeout as timeout_error  # Airflow's execution_timeout

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    store = _HungStore(s3=s3)
    attach(protocol="s3", fs=store)
    target = parse_destination("s3://media/videos/clip.mp4")
    started = time.monotonic()
    with pytest.raises(timeout_error), timeout(2):
        target.write_bytes(b"a paid video")
    assert time.monotonic() - started < 15
    assert store.uploading.is_set() and store.cancelled
    assert store.objects == {}
    assert store.aborted == ([("media", "videos/clip.mp4", "upload-1")] if s3 else [])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("protocol", "size", "expected"),
    [
        ("s3", 1 << 30, {"chunksize": 16 << 20, "max_concurrency": 4}),
        # S3 takes 10,000 parts at most: a part grows with the file, the parts in flight stay 4.
        ("s3", 500 << 30, {"chunksize": -(-(500 << 30) // 10_000), "max_concurrency": 4}),
        ("gs", 1 << 30, {"chunksize": 16 << 20}),
        ("abfs", 1 << 30, {"overwrite": True, "max_concurrency": 4}),
        ("memory", 1 << 30, {}),
    ],
)
def test_uploads_take_the_stores_own_bounds_on_memory(
    protocol: str, size: int, expected: dict[str, Any]
) -> None:
    target = parse_destination(f"{protocol}://media/videos/clip.mp4")
    assert isinstance(target, ObjectStoreDestination)
    assert target._upload_options(size) == expected


def test_the_object_store_uri_reads_back_with_object_storage_path(memory_bucket: str) -> None:
    from airflow.sdk import ObjectStoragePath

    target = parse_destination(f"memory://{memory_bucket}/v/clip.mp4")
    target.write_bytes(b"bytes")
    assert ObjectStoragePath(target.uri).read_bytes() == b"bytes"
    assert target.canonical_uri == f"memory://{memory_bucket}/v/clip.mp4"


# --------------------------------------------------------------------------------------------
# Names: canonical URIs, lineage, folders, sidecars, for every kind
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "uri", "canonical", "lineage", "folder", "sidecar"),
    [
        (
            "s3://aws_media@media/veo/",
            "s3://aws_media@media/veo/clip.mp4",
            "s3://media/veo/clip.mp4",
            ("s3://media", "veo/clip.mp4"),
            "s3://aws_media@media/veo/",
            "s3://aws_media@media/veo/clip.json",
        ),
        (
            "gs://media/clip.mp4",
            "gs://media/clip.mp4",
            "gs://media/clip.mp4",
            ("gs://media", "clip.mp4"),
            "gs://media/",
            "gs://media/clip.json",
        ),
        (
            "abfs://videos@acct01.dfs.core.windows.net/out/clip.mp4",
            "abfs://videos@acct01.dfs.core.windows.net/out/clip.mp4",
            "abfs://videos@acct01.dfs.core.windows.net/out/clip.mp4",
            ("abfs://videos@acct01.dfs.core.windows.net", "out/clip.mp4"),
            "abfs://videos@acct01.dfs.core.windows.net/out/",
            "abfs://videos@acct01.dfs.core.windows.net/out/clip.json",
        ),
        (
            "abfss://videos@ACCT01.blob.core.chinacloudapi.cn/clip.mp4",
            "abfss://videos@acct01.dfs.core.chinacloudapi.cn/clip.mp4",
            "abfss://videos@acct01.dfs.core.chinacloudapi.cn/clip.mp4",
            ("abfss://videos@acct01.dfs.core.chinacloudapi.cn", "clip.mp4"),
            "abfss://videos@acct01.dfs.core.chinacloudapi.cn/",
            "abfss://videos@acct01.dfs.core.chinacloudapi.cn/clip.json",
        ),
    ],
)
def test_names_of_each_store(
    written: str,
    uri: str,
    canonical: str,
    lineage: tuple[str, str],
    folder: str,
    sidecar: str,
) -> None:
    target = parse_destination(written).file_for("clip")
    assert target.name == "clip.mp4"
    assert (target.uri, target.canonical_uri, target.lineage_name) == (uri, canonical, lineage)
    assert (target.folder, target.sidecar().uri) == (folder, sidecar)


def test_an_account_qualified_azure_uri_is_not_a_connection_id() -> None:
    target = parse_destination("abfs://videos@acct01.dfs.core.windows.net/out/")
    assert isinstance(target, ObjectStoreDestination)
    assert (target.conn_id, target.bucket, target.account, target.key) == (None, "videos", "acct01", "out/")
    # Airflow's own form keeps meaning a connection id.
    airflow_form = parse_destination("abfs://azure_media@videos/out/")
    assert isinstance(airflow_form, ObjectStoreDestination)
    assert (airflow_form.conn_id, airflow_form.bucket, airflow_form.account) == (
        "azure_media",
        "videos",
        None,
    )


def test_azure_with_the_account_in_the_connection(fake_store: Any) -> None:
    fake_store("abfs", account_name="Acct02")
    target = parse_destination("abfs://videos/out/clip.mp4")
    assert target.canonical_uri == "abfs://videos@acct02.dfs.core.windows.net/out/clip.mp4"
    assert target.console_url() == "https://acct02.blob.core.windows.net/videos/out/clip.mp4"


def test_azure_without_an_account_anywhere_keeps_the_container_and_has_no_link(fake_store: Any) -> None:
    fake_store("abfs")
    target = parse_destination("abfs://videos/out/clip.mp4")
    assert target.canonical_uri == "abfs://videos/out/clip.mp4"
    assert target.console_url() == ""


def test_azurite_links_to_its_own_blob_url(fake_store: Any) -> None:
    from types import SimpleNamespace

    # adlfs made from a connection string: the account and endpoint are its service client's.
    service = SimpleNamespace(account_name="devstoreaccount1", url="http://127.0.0.1:10000/devstoreaccount1/")
    fake_store("abfs", account_name=None, service_client=service)
    target = parse_destination("abfs://videos/a fox.mp4")
    assert target.console_url() == "http://127.0.0.1:10000/devstoreaccount1/videos/a%20fox.mp4"
    assert target.canonical_uri == "abfs://videos@devstoreaccount1.dfs.core.windows.net/a fox.mp4"


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        (None, "https://s3.console.aws.amazon.com/s3/object/media?prefix=veo/a%20fox%2B1.mp4"),
        (
            "https://s3.eu-west-1.amazonaws.com",
            "https://s3.console.aws.amazon.com/s3/object/media?prefix=veo/a%20fox%2B1.mp4",
        ),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/media/veo/a%20fox%2B1.mp4"),
        ("http://minio.internal:9000/", "http://minio.internal:9000/media/veo/a%20fox%2B1.mp4"),
    ],
)
def test_s3_links_to_aws_only_for_aws(
    fake_store: Any, monkeypatch: pytest.MonkeyPatch, endpoint: str | None, url: str
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    fake_store("s3", endpoint_url=endpoint)
    assert parse_destination("s3://media/veo/a fox+1.mp4").console_url() == url


def test_s3_endpoint_from_the_environment(fake_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:8333")
    fake_store("s3")
    assert parse_destination("s3://media/clip.mp4").console_url() == "http://127.0.0.1:8333/media/clip.mp4"


def test_gcs_links_to_the_console_unless_emulated(fake_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    fake_store("gs")
    target = parse_destination("gs://media/vidéo 1.mp4")
    expected = (
        "https://console.cloud.google.com/storage/browser/_details/media/vid%C3%A9o%201.mp4;tab=live_object"
    )
    assert target.console_url() == expected
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9023")
    assert target.console_url() == ""


def test_no_link_for_a_local_file_a_folder_or_a_store_without_a_filesystem(tmp_path: Path) -> None:
    assert parse_destination(tmp_path / "clip.mp4").console_url() == ""
    assert parse_destination("nosuchfs://bucket/clip.mp4").console_url() == ""
    assert parse_destination("s3://media/videos/").console_url() == ""


#: Keys a destination can really have: spaces, a plus, unicode, and characters that would end a
#: path or start a parameter if left as they are.
ODD_KEYS = [
    "videos/a fox at dawn.mp4",
    "videos/a+b=c&d.mp4",
    "vidéos/猫 🦊/été.mp4",
    "odd/what?#frag;tab=x.mp4",
    "pct/100%25 done%.mp4",
    "deep/er/and//double/slash.mp4",
]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_keys_round_trip_through_each_link(
    fake_store: Any, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    from urllib.parse import parse_qs, unquote, urlsplit

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    fake_store("s3")
    fake_store("gs")
    s3 = urlsplit(parse_destination(f"s3://my-bucket/{key}").console_url())
    assert (s3.netloc, s3.path, s3.fragment) == ("s3.console.aws.amazon.com", "/s3/object/my-bucket", "")
    assert parse_qs(s3.query) == {"prefix": [key]}
    gcs = urlsplit(parse_destination(f"gs://my-bucket/{key}").console_url())
    encoded, _, tab = gcs.path.removeprefix("/storage/browser/_details/my-bucket/").rpartition(";")
    assert (tab, gcs.query, gcs.fragment) == ("tab=live_object", "", "")
    assert unquote(encoded) == key
    azure = urlsplit(parse_destination(f"abfs://videos@acct01.dfs.core.windows.net/{key}").console_url())
    assert (azure.netloc, azure.query, azure.fragment) == ("acct01.blob.core.windows.net", "", "")
    assert unquote(azure.path.removeprefix("/videos/")) == key


# --------------------------------------------------------------------------------------------
# Before paying: the destination can be written
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["videos/", "videos/clip.mp4", "", "clip.mp4"])
def test_a_writable_bucket_passes_and_the_probe_is_gone(
    memory_bucket: str, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    fs = memory_fs()
    probes: list[str] = []
    pipe_file = fs.pipe_file
    monkeypatch.setattr(fs, "pipe_file", lambda path, value: (probes.append(path), pipe_file(path, value)))
    parse_destination(f"memory://{memory_bucket}/{where}").check_writable()
    [probe] = probes
    folder = f"/{memory_bucket}/videos/" if where.startswith("videos/") else f"/{memory_bucket}/"
    assert probe.startswith(f"{folder}.veo-write-check-")  # beside the video, in its bucket
    assert fs.find(f"/{memory_bucket}") == []


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (
            FileNotFoundError("NoSuchBucket: The specified bucket does not exist"),
            VeoInputError,
            "does not exist",
        ),
        (PermissionError("AccessDenied"), VeoInputError, "may not write"),
        (ConnectionError("Could not connect to the endpoint URL"), VeoStorageError, "before paying"),
    ],
)
def test_an_unwritable_bucket_is_refused(
    memory_bucket: str, monkeypatch: pytest.MonkeyPatch, error: Exception, kind: type, words: str
) -> None:
    fs = memory_fs()

    def refuse(path: str, value: bytes, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(fs, "pipe_file", refuse)
    with pytest.raises(kind) as info:
        parse_destination(f"memory://{memory_bucket}/videos/").check_writable()
    assert words in str(info.value) and memory_bucket in str(info.value)
    if kind is VeoStorageError:
        assert info.value.retryable


def test_a_store_without_a_filesystem_is_refused() -> None:
    with pytest.raises(VeoInputError) as info:
        parse_destination("nosuchfs://bucket/videos/").check_writable()
    assert info.value.field == "destination"
    assert "no filesystem for nosuchfs://" in str(info.value)


def test_an_undefined_connection_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import BaseHook
    from airflow.sdk.io import fs as airflow_fs
    from airflow.sdk.io import store

    def get_fs(conn_id: str | None, options: Any) -> Any:  # what a provider's filesystem does first
        return BaseHook.get_connection(conn_id)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_STORE_CACHE", {})
    monkeypatch.setattr(airflow_fs, "_register_filesystems", lambda: {"fakefs": get_fs})
    with pytest.raises(VeoInputError) as info:
        parse_destination("fakefs://no_such_conn_xyz@bucket/videos/").check_writable()
    assert "the connection 'no_such_conn_xyz' is not defined" in str(info.value)


def test_a_store_whose_credentials_cannot_be_found_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.io import fs as airflow_fs
    from airflow.sdk.io import store

    class DefaultCredentialsError(Exception):
        pass

    def get_fs(conn_id: str | None, options: Any) -> Any:
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(store, "_STORE_CACHE", {})
    monkeypatch.setattr(airflow_fs, "_register_filesystems", lambda: {"fakefs": get_fs})
    with pytest.raises(VeoInputError) as info:
        parse_destination("fakefs://gcs_media@bucket/videos/").check_writable()
    assert "cannot open fakefs:// with the connection 'gcs_media': DefaultCredentialsError" in str(info.value)


def test_local_folder_whose_ancestor_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"")
    with pytest.raises(VeoInputError, match="is a file"):
        parse_destination(f"{tmp_path}/blocker/videos/").check_writable()
    parse_destination(f"{tmp_path}/new/videos/").check_writable()  # created later, by the download
    assert not (tmp_path / "new").exists()


def _as_nobody(function: Any) -> tuple[int, str]:
    """Run ``function`` in a forked child as the unprivileged user ``nobody``: (exit code, error text)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root for good, then run
        os.close(read)
        code, text = 0, ""
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            function()
        except VeoInputError as exc:
            code, text = 1, str(exc)
        except BaseException as exc:
            code, text = 2, repr(exc)
        os.write(write, text.encode())
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to 'nobody' needs root; as a user, see the next test")
def test_a_0555_folder_is_refused_for_a_user_who_cannot_write_it() -> None:
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        base.chmod(0o755)
        locked, open_ = base / "locked", base / "open"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        open_.mkdir()
        open_.chmod(0o777)
        code, text = _as_nobody(parse_destination(f"{locked}/").check_writable)
        assert code == 1, text
        assert "not writable by this task's user (uid 65534, mode 555)" in text
        assert _as_nobody(parse_destination(f"{open_}/sub/clip.mp4").check_writable) == (0, "")
        # Root may write to a 0555 folder, as the kernel lets it: the check says what the write would meet.
        parse_destination(f"{locked}/").check_writable()
    finally:
        import shutil

        shutil.rmtree(base)


@pytest.mark.skipif(os.geteuid() == 0, reason="runs as a user without root; as root, see the previous test")
def test_a_0555_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(VeoInputError, match="not writable"):
        parse_destination(f"{locked}/").check_writable()


def test_a_read_only_filesystem_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with pytest.raises(VeoInputError, match="read-only filesystem"):
            parse_destination(f"{folder}/videos/").check_writable()
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)


# --------------------------------------------------------------------------------------------
# Leftovers of a killed try
# --------------------------------------------------------------------------------------------


def test_stale_part_files_of_the_same_target_are_removed(tmp_path: Path) -> None:
    target = parse_destination(tmp_path / "clip.mp4")
    old, fresh = tmp_path / ".clip.mp4.0123456789ab.part", tmp_path / ".clip.mp4.ba9876543210.part"
    other_file = tmp_path / ".clip.mp4.x.0123456789ab.part"  # another file's (clip.mp4.x) temp file
    not_ours = [tmp_path / ".clip.mp4.notes", tmp_path / ".clip.mp4.tmp.part", other_file]
    for path in (old, fresh, *not_ours):
        path.write_bytes(b"partial")
    started = time.time() - 60
    os.utime(old, (started - 3600, started - 3600))
    os.utime(other_file, (started - 3600, started - 3600))
    os.utime(fresh, (started + 30, started + 30))
    assert target.remove_stale_parts(older_than=started) == [str(old)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (fresh, *not_ours))


def test_stale_part_files_of_an_object_store_target_are_removed(
    memory_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    target = parse_destination(f"memory://{memory_bucket}/videos/clip.mp4")
    elsewhere = parse_destination(f"memory://{memory_bucket}/other/clip.mp4")
    for destination in (target, elsewhere):
        with destination.stage() as sink:
            sink.write(b"partial")
            [*_] = tmp_path.iterdir()
            part = next(p for p in tmp_path.iterdir())
            os.link(part, tmp_path / f"kept-{part.name}")
    leftovers = sorted(tmp_path.iterdir())
    for path in leftovers:
        path.rename(tmp_path / path.name.removeprefix("kept-"))
    assert len(list(tmp_path.iterdir())) == 2
    removed = target.remove_stale_parts(older_than=time.time() + 1)
    assert len(removed) == 1 and Path(removed[0]).name.startswith(target._temp_prefix())
    assert len(list(tmp_path.iterdir())) == 1


# --------------------------------------------------------------------------------------------
# The staged file's mode
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_the_published_file_has_the_mode_the_umask_gives(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        parse_destination(tmp_path / "clip.mp4").write_bytes(b"video")
    finally:
        os.umask(previous)
    assert (tmp_path / "clip.mp4").stat().st_mode & 0o777 == mode


@pytest.mark.parametrize(
    ("uri", "options"),
    [
        ("abfs://videos@acct01.dfs.core.windows.net/x.mp4", {"account_name": "acct01"}),
        (
            "abfss://videos@acct01.blob.core.chinacloudapi.cn/x.mp4",
            {"account_name": "acct01", "account_host": "acct01.blob.core.chinacloudapi.cn"},
        ),
    ],
)
def test_an_account_qualified_azure_uri_gets_adlfs_for_its_account(
    monkeypatch: pytest.MonkeyPatch, uri: str, options: dict[str, str]
) -> None:
    import fsspec

    made: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(fsspec, "filesystem", lambda protocol, **kwargs: made.append((protocol, kwargs)))
    target = parse_destination(uri)
    assert isinstance(target, ObjectStoreDestination)
    target.filesystem()
    assert made == [("abfs", options)]


def test_an_account_qualified_azure_uri_without_adlfs_is_refused() -> None:
    import importlib.util

    if importlib.util.find_spec("adlfs") is not None:
        pytest.skip("adlfs is installed: the objectstore group runs this URI against Azurite")
    with pytest.raises(VeoInputError, match="no filesystem for abfs://"):
        parse_destination("abfs://videos@acct01.dfs.core.windows.net/out/").check_writable()
