"""Where videos go: one :class:`Destination` value, parsed once, that knows its kind.

A destination is a local path (``/videos/``, ``file:///videos/clip.mp4``) or an object store URI in
Airflow's ``ObjectStoragePath`` form (``s3://conn_id@bucket/key``, ``gs://bucket/key``,
``abfs://conn_id@container/path``), or Azure's account-qualified form
(``abfs://container@account.dfs.core.windows.net/path``, which Airflow would misread as a
connection id). Everything that depends on the kind is answered here, and only here: the file for a
video id, the canonical URI (assets, lineage), the manifest beside it, the folder fetch commands
write to, the check before paying, how bytes are staged and published, the web page of the object.

Publishing is all-or-nothing by construction: the bytes go to a temporary file first, which becomes
the destination only once the caller has verified it. Locally that is a rename in the same folder;
on an object store it is the filesystem's own upload of a whole file (``fs.put_file``: one PUT, or a
multipart/resumable/block upload that s3fs, gcsfs and adlfs commit only at its end and abort on
error), never a write through an open file object, which s3fs commits when an error closes it. The
upload holds a few parts in memory whatever the video weighs, and whatever interrupts the task
(its execution timeout, a SIGTERM) cancels it and aborts what it started, rather than leaving it to
commit in the background after the task failed. A store's error is reported as what it says, and
an object found whole at the key after an error is taken as stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import hashlib
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import quote, urlsplit

from airflow_provider_veo.api import VeoError, VeoInputError, video_filename

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem  # type: ignore[import-untyped]

__all__ = [
    "Destination",
    "LocalDestination",
    "ObjectStoreDestination",
    "VeoStorageError",
    "parse_destination",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Temporary files are ``.<name>.<12 hex digits>.part``; object stores' are prefixed with a digest of
#: the target, as they share the system's temp folder.
_PART_SUFFIX = ".part"
_TOKEN_BYTES = 6
_PART_TOKEN = re.compile(rf"\.[0-9a-f]{{{2 * _TOKEN_BYTES}}}{re.escape(_PART_SUFFIX)}")

_S3_SCHEMES = frozenset({"s3", "s3a"})
_GCS_SCHEMES = frozenset({"gs", "gcs"})
#: adlfs's and Hadoop's spellings; Airflow's Azure provider registers abfs, abfss and adl.
_AZURE_SCHEMES = frozenset({"abfs", "abfss", "az", "wasb", "wasbs"})
#: ``container@account.(dfs|blob).<cloud's DNS suffix>``: Azure's account-qualified authority.
_AZURE_AUTHORITY = re.compile(
    r"(?P<container>[^@/]+)@(?P<account>[a-z0-9]{3,24})\.(?:dfs|blob)\.(?P<suffix>[a-z0-9-]+(?:\.[a-z0-9-]+)+)",
    re.IGNORECASE,
)
_AZURE_PUBLIC_SUFFIX = "core.windows.net"
_AWS_CONSOLE = "https://s3.console.aws.amazon.com/s3/object/"
_GCS_CONSOLE = "https://console.cloud.google.com/storage/browser/_details/"


class VeoStorageError(VeoError):
    """The store refused or failed a write (an endpoint down, a permission or a bucket gone).

    Retryable unless the store said the bucket is missing or the credentials may not write there:
    another try of the task uploads again (a retry of a generate task resumes its paid job).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def parse_destination(destination: str | os.PathLike[str] | Destination) -> Destination:
    """The destination the user wrote, as a value; a folder ends in ``/`` or exists locally."""
    if isinstance(destination, Destination):
        return destination
    text = os.fspath(destination).strip() if isinstance(destination, (str, os.PathLike)) else ""
    if not text:
        raise VeoInputError("destination", "a local path or an object storage URI is required")
    if "://" in text and not text.lower().startswith("file://"):
        return ObjectStoreDestination.parse(text)
    return LocalDestination.parse(text)


class Destination(ABC):
    """A local or object-store location: a folder (``is_folder``) or one file."""

    #: The destination as the user wrote it (fetch commands repeat it).
    written: str
    is_folder: bool

    # -- what it is --------------------------------------------------------------------------

    @abstractmethod
    def file_for(self, video_id: str) -> Destination:
        """The file a video goes to: ``<safe id>.mp4`` in a folder, the file itself otherwise."""

    @abstractmethod
    def sidecar(self) -> Destination:
        """The manifest's location beside a file: ``clip.mp4`` -> ``clip.json``."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The file's name (``clip.mp4``)."""

    @property
    @abstractmethod
    def uri(self) -> str:
        """Where the file is, as users read it back: an absolute local path, or the URI with its
        connection id as ``ObjectStoragePath`` reads it (``StoredVideo['uri']``)."""

    @property
    @abstractmethod
    def canonical_uri(self) -> str:
        """Where the file is, without a connection id or credentials (``file:///abs/path``,
        ``s3://bucket/key``, ``abfs://container@account.dfs.core.windows.net/path``): assets and
        lineage name a stored video by it."""

    @property
    @abstractmethod
    def folder(self) -> str:
        """The folder of the file (or the folder itself), as a destination ending in ``/``."""

    @property
    @abstractmethod
    def lineage_name(self) -> tuple[str, str]:
        """OpenLineage's dataset naming: (namespace, name)."""

    @abstractmethod
    def console_url(self) -> str:
        """The web page of the object (the AWS or Google console, the blob's URL, or the custom
        endpoint's URL of the object); ``""`` when there is none."""

    @abstractmethod
    def read_bytes(self, limit: int, field: str) -> bytes:
        """Up to ``limit`` bytes of the file (a reference image); a failure is a
        :class:`VeoInputError` naming ``field``."""

    # -- before paying -----------------------------------------------------------------------

    @abstractmethod
    def check_writable(self) -> None:
        """Refuse, before a paid job is submitted, a destination the video could not be written to.

        A cheap check (permissions, a zero-byte probe on an object store), never the video itself.
        """

    # -- writing -----------------------------------------------------------------------------

    def stage(self) -> StagedFile:
        """A temporary file that becomes this destination on ``publish()``, and vanishes otherwise."""
        return StagedFile(self)

    def write_bytes(self, content: bytes) -> str:
        """Write a small file (a manifest, a summary) the way videos are written; returns its ``uri``."""
        staged = self.stage()
        with staged as sink:
            try:
                sink.write(content)
            except OSError as exc:
                raise self.write_error(exc) from exc
            staged.publish()
        return self.uri

    @abstractmethod
    def write_error(self, exc: OSError) -> VeoError:
        """The error for a failed write of the staged file (a full disk): nothing is left behind."""

    def remove_stale_parts(self, older_than: float) -> list[str]:
        """Remove this file's temporary files that an earlier, killed try left (modified before
        ``older_than``, a POSIX time); returns their paths, for the task's log."""
        prefix = self._temp_prefix()
        removed = []
        with contextlib.suppress(OSError):
            for entry in os.scandir(self._temp_dir):
                if not (
                    entry.name.startswith(prefix) and _PART_TOKEN.fullmatch(entry.name[len(prefix) - 1 :])
                ):
                    continue
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < older_than:
                        os.unlink(entry.path)
                        removed.append(entry.path)
        return removed

    @property
    @abstractmethod
    def _temp_dir(self) -> Path:
        """Where the staged file is written."""

    def _temp_folder(self) -> Path:
        """:attr:`_temp_dir`, created if needed."""
        return self._temp_dir

    def _temp_prefix(self) -> str:
        return f".{self.name}."

    @abstractmethod
    def _publish(self, staged: Path) -> None:
        """Put the verified, closed temporary file in place."""


@dataclass(frozen=True)
class LocalDestination(Destination):
    """A path on the worker's filesystem; the staged file is renamed into place."""

    path: Path
    is_folder: bool
    written: str

    @classmethod
    def parse(cls, text: str) -> LocalDestination:
        is_folder = text.endswith("/")
        local = Path(urlsplit(text).path if text.lower().startswith("file://") else text).expanduser()
        return cls(path=local, is_folder=is_folder or local.is_dir(), written=text)

    def file_for(self, video_id: str) -> LocalDestination:
        if not self.is_folder:
            return self
        return replace(self, path=self.path / video_filename(video_id), is_folder=False)

    def sidecar(self) -> LocalDestination:
        return replace(self, path=self.path.with_suffix(".json"), is_folder=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def uri(self) -> str:
        return str(self.path.resolve())

    @property
    def canonical_uri(self) -> str:
        return self.path.resolve().as_uri()

    @property
    def folder(self) -> str:
        resolved = self.path.resolve()
        return f"{resolved if self.is_folder else resolved.parent}/"

    @property
    def lineage_name(self) -> tuple[str, str]:
        return "file", str(self.path.resolve())

    def console_url(self) -> str:
        return ""

    def read_bytes(self, limit: int, field: str) -> bytes:
        try:
            with self.path.open("rb") as source:
                return source.read(limit)
        except OSError as exc:
            raise VeoInputError(field, f"{self.path} cannot be read: {exc}") from exc

    def check_writable(self) -> None:
        """The folder (or its nearest existing ancestor, where it will be created) must be a
        folder the task's user may write to, on a filesystem mounted read-write."""
        folder = self.path if self.is_folder else self.path.parent
        ancestor = folder
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise VeoInputError("destination", f"cannot create folder {folder}: {ancestor} is a file")
        if _read_only_mount(ancestor):
            raise VeoInputError(
                "destination", f"cannot write to {folder}: {ancestor} is on a read-only filesystem"
            )
        # access() answers for the real user, as the write will be made, and knows read-only mounts;
        # for root it allows writes that the mode bits alone would refuse, as the kernel does.
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise VeoInputError(
                "destination",
                f"cannot write to {folder}: {ancestor} is not writable by this task's user "
                f"(uid {os.getuid()}, mode {ancestor.stat().st_mode & 0o7777:o})",
            )

    def write_error(self, exc: OSError) -> VeoError:
        return VeoInputError(
            "destination", f"cannot write the video to {self.path.parent}: {exc}; nothing was left there"
        )

    @property
    def _temp_dir(self) -> Path:
        return self.path.parent

    def _temp_folder(self) -> Path:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VeoInputError("destination", f"cannot create folder {folder}: {exc}") from exc
        return folder

    def _publish(self, staged: Path) -> None:
        os.replace(staged, self.path)


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@dataclass(frozen=True)
class ObjectStoreDestination(Destination):
    """An object in a bucket (S3, GCS, Azure or any fsspec filesystem Airflow knows).

    ``conn_id`` is the Airflow connection of ``scheme://conn_id@bucket/key``; ``account`` the Azure
    storage account of an account-qualified URI, or the one the connection's filesystem names.
    """

    protocol: str
    bucket: str
    key: str
    is_folder: bool
    written: str
    conn_id: str | None = None
    account: str | None = None
    azure_suffix: str = _AZURE_PUBLIC_SUFFIX

    _FOLDER_PROBE: ClassVar[str] = ".veo-write-check-"

    @classmethod
    def parse(cls, text: str) -> ObjectStoreDestination:
        protocol, _, rest = text.partition("://")
        protocol = protocol.lower()
        authority, _, key = rest.partition("/")
        conn_id: str | None = None
        account: str | None = None
        suffix = _AZURE_PUBLIC_SUFFIX
        qualified = _AZURE_AUTHORITY.fullmatch(authority) if protocol in _AZURE_SCHEMES else None
        if qualified:
            bucket, account, suffix = (
                qualified["container"],
                qualified["account"].lower(),
                qualified["suffix"],
            )
        else:
            userinfo, at, bucket = authority.rpartition("@")
            conn_id = userinfo or None if at else None
        if not bucket:
            raise VeoInputError("destination", f"{text!r} names no bucket or container")
        return cls(
            protocol=protocol,
            bucket=bucket,
            key=key,
            is_folder=text.endswith("/") or not key,
            written=text,
            conn_id=conn_id,
            account=account,
            azure_suffix=suffix.lower(),
        )

    def file_for(self, video_id: str) -> ObjectStoreDestination:
        if not self.is_folder:
            return self
        key = f"{self.key.rstrip('/')}/{video_filename(video_id)}".lstrip("/")
        return replace(self, key=key, is_folder=False)

    def sidecar(self) -> ObjectStoreDestination:
        stem, dot, _ = self.key.rpartition(".")
        key = f"{stem}.json" if dot and "/" not in self.key[len(stem) :] else f"{self.key}.json"
        return replace(self, key=key, is_folder=False)

    @property
    def name(self) -> str:
        return self.key.rstrip("/").rpartition("/")[2]

    @property
    def uri(self) -> str:
        if self._account_qualified:
            return f"{self.protocol}://{self._azure_authority}/{self.key}"
        user = f"{self.conn_id}@" if self.conn_id else ""
        return f"{self.protocol}://{user}{self.bucket}/{self.key}"

    @property
    def canonical_uri(self) -> str:
        namespace, name = self.lineage_name
        return f"{namespace}/{name}"

    @property
    def folder(self) -> str:
        return replace(self, key=self._folder_key, is_folder=True).uri

    @property
    def lineage_name(self) -> tuple[str, str]:
        if self.protocol in _AZURE_SCHEMES:
            account = self._azure_account()
            if account:
                return f"{self.protocol}://{self.bucket}@{account}.dfs.{self.azure_suffix}", self.key
        return f"{self.protocol}://{self.bucket}", self.key

    def console_url(self) -> str:
        """See :class:`Destination`; a filesystem that cannot be made gives no link."""
        if not self.key or self.is_folder:
            return ""
        try:
            if self.protocol in _S3_SCHEMES:
                return self._s3_url()
            if self.protocol in _GCS_SCHEMES:
                return self._gcs_url()
            if self.protocol in _AZURE_SCHEMES:
                return self._azure_url()
        except Exception as exc:  # a link is a convenience: never fail the task over it
            log.info("No 'Stored video' link for %s: %s", self.canonical_uri, exc)
        return ""

    def check_writable(self) -> None:
        """A filesystem for the scheme must be installed, the bucket must exist, and the credentials
        must let this task write there: proven by writing and deleting a zero-byte object beside the
        video (the only check every store answers the same way; a bucket listing or HEAD would need
        rights a write-only role lacks)."""
        fs = self.filesystem(field="destination")
        probe = f"{self._fs_path(fs, self._folder_key)}{self._FOLDER_PROBE}{secrets.token_hex(_TOKEN_BYTES)}"
        try:
            _call(fs, "pipe_file", probe, b"")
        except Exception as exc:
            raise self._refusal(exc, before_paying=True, fs=fs) from exc
        try:
            fs.rm_file(probe)
        except Exception as exc:
            log.warning("Could not delete the zero-byte write check %s (%s)", probe, exc)

    def read_bytes(self, limit: int, field: str) -> bytes:
        fs = self.filesystem(field=field)
        try:
            with fs.open(self._fs_path(fs, self.key), "rb") as source:
                content: bytes = source.read(limit)
                return content
        except Exception as exc:
            raise VeoInputError(field, f"{self.uri} cannot be read: {type(exc).__name__}: {exc}") from exc

    @property
    def _folder_key(self) -> str:
        key = self.key if self.is_folder else self.key.rpartition("/")[0]
        return f"{key.rstrip('/')}/" if key.strip("/") else ""

    def filesystem(self, field: str = "destination") -> AbstractFileSystem:
        """The fsspec filesystem Airflow gives for the scheme and connection (the connection's
        credentials and endpoint), or a :class:`VeoInputError` naming ``field`` saying what is missing."""
        from airflow.sdk.io import attach

        try:
            if self._account_qualified:
                return self._account_filesystem()
            return attach(self.protocol, self.conn_id).fs
        except (ImportError, ValueError) as exc:
            raise VeoInputError(
                field,
                f"no filesystem for {self.protocol}:// is installed ({exc}); install the Airflow "
                "provider of that store with its filesystem (apache-airflow-providers-amazon[s3fs], "
                "-google, -microsoft-azure)",
            ) from exc
        except Exception as exc:  # no connection, no credentials (google.auth's DefaultCredentialsError...)
            if type(exc).__name__ == "AirflowNotFoundException":
                raise VeoInputError(field, f"the connection {self.conn_id!r} is not defined: {exc}") from exc
            connection = f"the connection {self.conn_id!r}" if self.conn_id else "no connection"
            raise VeoInputError(
                field, f"cannot open {self.protocol}:// with {connection}: {type(exc).__name__}: {exc}"
            ) from exc

    def write_error(self, exc: OSError) -> VeoError:
        return VeoInputError(
            "destination",
            f"cannot stage the video in {self._temp_dir} before uploading it to {self.uri}: {exc}; "
            "nothing was left there",
        )

    @property
    def _temp_dir(self) -> Path:
        return Path(tempfile.gettempdir())

    def _temp_prefix(self) -> str:
        digest = hashlib.sha256(self.canonical_uri.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        return f".veo-{digest}-{self.name}."

    def _publish(self, staged: Path) -> None:
        """Upload the staged file whole, in bounded memory, cancelled and aborted if interrupted.

        A store error does not prove the upload failed (a retried commit may find it already done):
        the object at the key with the file's size means it succeeded."""
        fs = self.filesystem()
        path = self._fs_path(fs, self.key)
        size = staged.stat().st_size
        try:
            _call(fs, "put_file", str(staged), path, **self._upload_options(size))
        except Exception as exc:
            found = _stored_size(fs, path)
            if found == size:
                log.warning(
                    "The store answered %s: %s to the upload of %s, but the object is at its key, whole "
                    "(%d bytes): taking it as stored",
                    type(exc).__name__,
                    exc,
                    self.uri,
                    size,
                )
                return
            raise self._refusal(exc, before_paying=False, fs=fs, checked_key=found is not _UNKNOWN) from exc

    def _upload_options(self, size: int) -> dict[str, Any]:
        """The store's own knobs that bound an upload's memory to a few parts, whatever the file weighs.

        s3fs reads ``max_concurrency`` parts of ``chunksize`` at once (10 of 50 MiB by default), gcsfs
        one chunk (50 MiB), adlfs up to 128 blocks at once; S3 takes at most 10,000 parts."""
        if self.protocol in _S3_SCHEMES:
            chunk = max(UPLOAD_PART_BYTES, -(-size // _S3_MAX_PARTS))
            return {"chunksize": chunk, "max_concurrency": UPLOAD_CONCURRENCY}
        if self.protocol in _GCS_SCHEMES:
            return {"chunksize": UPLOAD_PART_BYTES}
        if self.protocol in _AZURE_SCHEMES:
            # adlfs refuses to replace an existing blob unless told to; the other stores replace it.
            return {"overwrite": True, "max_concurrency": UPLOAD_CONCURRENCY}
        return {}

    # -- the store's kind ------------------------------------------------------------------------

    def _account_filesystem(self) -> AbstractFileSystem:
        """adlfs for the URI's own account, with the credentials adlfs finds itself (``AZURE_STORAGE_*``
        variables, the default Azure credential): Airflow's Azure filesystem takes an account only
        from a connection, which this form of URI has no room for."""
        import fsspec

        options: dict[str, Any] = {"account_name": self.account}
        if self.azure_suffix != _AZURE_PUBLIC_SUFFIX:  # a sovereign cloud
            options["account_host"] = f"{self.account}.blob.{self.azure_suffix}"
        return fsspec.filesystem("abfs", **options)

    @property
    def _account_qualified(self) -> bool:
        return self.conn_id is None and self.account is not None

    @property
    def _azure_authority(self) -> str:
        return f"{self.bucket}@{self.account}.dfs.{self.azure_suffix}"

    def _fs_path(self, fs: AbstractFileSystem, key: str) -> str:
        """The path the filesystem takes (``bucket/key``; its own spelling, e.g. memory's leading ``/``).
        A folder key (``""`` for the bucket's root, or ending in ``/``) keeps its trailing ``/``."""
        stripped: str = fs._strip_protocol(f"{self.protocol}://{self.bucket}/{key}")
        is_folder = not key or key.endswith("/")
        return stripped + ("/" if is_folder and not stripped.endswith("/") else "")

    def _refusal(
        self, exc: Exception, *, before_paying: bool, fs: AbstractFileSystem, checked_key: bool = True
    ) -> VeoError:
        """What a failed write means, saying only what is known: the bucket missing (asked of the store,
        never guessed from a "not found", which may be a part or an upload that is gone), no
        permission, or the store's own error, retryable."""
        where = f"{self.uri}" + (f" (connection {self.conn_id!r})" if self.conn_id else "")
        what = f"{type(exc).__name__}: {exc}"
        status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
        not_found = (
            isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT or status == 404
        )
        if not_found and _bucket_exists(fs, self._fs_path(fs, "")) is False:
            message, retryable = f"the bucket or container of {where} does not exist ({what})", False
        elif (
            isinstance(exc, PermissionError)
            or getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM)
            or status in (401, 403)
            or re.search(r"forbidden|access ?denied|not authori[sz]ed", what, re.IGNORECASE)
        ):
            message, retryable = f"these credentials may not write to {where} ({what})", False
        else:
            message, retryable = f"the store did not take the write to {where} ({what})", True
        if before_paying and not retryable:
            return VeoInputError("destination", message)
        if before_paying:
            return VeoStorageError(f"Cannot check the destination before paying: {message}", retryable=True)
        left = (
            "nothing was left there"
            if checked_key
            else "the store could not be asked whether anything is at the key"
        )
        return VeoStorageError(f"Could not upload the video: {message}; {left}", retryable=retryable)

    def _s3_url(self) -> str:
        endpoint = _s3_endpoint(self.filesystem())
        if endpoint:  # MinIO, SeaweedFS, moto, R2...: the endpoint's own (path-style) URL of the object
            return f"{endpoint.rstrip('/')}/{quote(self.bucket, safe='')}/{_path(self.key)}"
        return f"{_AWS_CONSOLE}{quote(self.bucket, safe='')}?prefix={_path(self.key)}"

    def _gcs_url(self) -> str:
        if os.environ.get("STORAGE_EMULATOR_HOST"):  # the GCS emulator has no console page
            return ""
        endpoint = str(getattr(self.filesystem(), "_endpoint", "") or "")
        if endpoint and "googleapis.com" not in endpoint:
            return ""
        return f"{_GCS_CONSOLE}{quote(self.bucket, safe='')}/{_path(self.key)};tab=live_object"

    def _azure_url(self) -> str:
        service = self._azure_service_url()
        if service:
            return f"{service.rstrip('/')}/{quote(self.bucket, safe='')}/{_path(self.key)}"
        account = self._azure_account()
        if not account:
            log.info("No 'Stored video' link for %s: the storage account is not known", self.uri)
            return ""
        return f"https://{account}.blob.{self.azure_suffix}/{quote(self.bucket, safe='')}/{_path(self.key)}"

    def _azure_account(self) -> str | None:
        if self.account:
            return self.account
        try:
            fs = self.filesystem()
        except Exception:
            return None
        # adlfs made from a connection string knows its account only through its service client.
        account = getattr(fs, "account_name", None) or getattr(
            getattr(fs, "service_client", None), "account_name", None
        )
        return str(account).lower() if account else None

    def _azure_service_url(self) -> str | None:
        """The blob service URL the connection's filesystem really uses, when it is not Azure's public
        one (Azurite's ``http://127.0.0.1:10000/devstoreaccount1``, a private endpoint)."""
        if self._account_qualified:
            return None
        fs = self.filesystem()
        url = getattr(getattr(fs, "service_client", None), "url", None) or getattr(fs, "account_url", None)
        if not url or re.search(r"\.blob\.core\.windows\.net", str(url)):
            return None
        return str(url)


# -- running a filesystem's calls: bounded, cancellable, all-or-nothing --------------------------

#: An upload's part (or chunk, or block batch) size and the parts in flight: the memory an upload takes
#: is about their product (64 MiB), whatever the video weighs; parts of 16 MiB keep S3 and GCS fast.
UPLOAD_PART_BYTES = 16 << 20
UPLOAD_CONCURRENCY = 4
_S3_MAX_PARTS = 10_000
#: How long an interrupted upload may spend aborting what it started (S3's multipart uploads).
ABORT_DEADLINE = 20.0
#: How long a question to the store after a failed upload may take (is the object there, the bucket?).
CHECK_DEADLINE = 30.0
#: The multipart uploads that the running upload started: ``(bucket, key, upload id)``.
_STARTED_UPLOADS: contextvars.ContextVar[list[tuple[str, str, str]]] = contextvars.ContextVar(
    "veo_started_uploads"
)


def _call(
    fs: AbstractFileSystem, method: str, *args: Any, deadline: float | None = None, **kwargs: Any
) -> Any:
    """``fs.<method>(*args, **kwargs)``; for an async filesystem (s3fs, gcsfs, adlfs), its coroutine run
    on fsspec's IO loop so that whatever interrupts this thread (Airflow's execution timeout, a
    SIGTERM, any exception) cancels it, instead of leaving it to run, and maybe commit, in the
    background; what it started is aborted before the interruption goes on. ``deadline`` bounds it."""
    from fsspec.asyn import AsyncFileSystem  # type: ignore[import-untyped]

    loop = getattr(fs, "loop", None) if isinstance(fs, AsyncFileSystem) else None
    if loop is None or fs.asynchronous or not loop.is_running():
        return getattr(fs, method)(*args, **kwargs)
    coroutine = _cancellable(fs, getattr(fs, f"_{method}")(*args, **kwargs))
    return _run_on_loop(loop, coroutine if deadline is None else asyncio.wait_for(coroutine, deadline))


def _run_on_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result, waited for in slices a signal can interrupt; on any interruption the
    coroutine is cancelled and given :data:`ABORT_DEADLINE` to clean up before the interruption goes on."""
    finished = threading.Event()
    tasks: list[asyncio.Task[T]] = []

    def start() -> None:
        task = loop.create_task(coroutine)
        task.add_done_callback(lambda _: finished.set())
        tasks.append(task)

    def cancel() -> None:
        for task in tasks:
            task.cancel()

    loop.call_soon_threadsafe(start)
    try:
        while not finished.wait(1.0):
            pass
    except BaseException:
        loop.call_soon_threadsafe(cancel)  # after start(): the loop runs its callbacks in order
        if not finished.wait(ABORT_DEADLINE + 5):
            log.warning("The store's call did not end within %.0f s of being cancelled", ABORT_DEADLINE + 5)
        raise
    return tasks[0].result()


async def _cancellable(fs: AbstractFileSystem, call: Coroutine[Any, Any, T]) -> T:
    """Await the filesystem's call; if it fails or is cancelled, abort the S3 multipart uploads it
    started (s3fs aborts its own on an error, never on a cancellation). gcsfs's resumable upload and
    adlfs's staged blocks commit nothing until their last request, so cancelling them leaves nothing."""
    started: list[tuple[str, str, str]] = []
    token = _STARTED_UPLOADS.set(started)
    try:
        if _is_s3fs(fs):
            await fs.set_session()
            fs.s3.meta.events.register(
                "after-call.s3.CreateMultipartUpload", _note_multipart_upload, unique_id=_NOTE_UPLOADS_ID
            )
        return await call
    except BaseException:
        if started:
            try:
                await asyncio.wait_for(_abort_uploads(fs, started), ABORT_DEADLINE)
            except Exception as exc:
                log.warning(
                    "The abort of the unfinished multipart upload(s) %s was not confirmed within %.0f s "
                    "(%s: %s): a store that is only slow still applies it; otherwise a bucket lifecycle "
                    "rule (AbortIncompleteMultipartUpload) removes them",
                    started,
                    ABORT_DEADLINE,
                    type(exc).__name__,
                    exc,
                )
        raise
    finally:
        _STARTED_UPLOADS.reset(token)


_NOTE_UPLOADS_ID = "airflow-provider-veo-started-uploads"


def _note_multipart_upload(parsed: dict[str, Any], **kwargs: Any) -> None:
    """botocore's hook after ``CreateMultipartUpload``: the upload id, kept for an abort if the
    upload of this task (the context variable is its own) does not end."""
    started = _STARTED_UPLOADS.get(None)
    if started is not None and parsed.get("UploadId"):
        started.append((str(parsed.get("Bucket")), str(parsed.get("Key")), str(parsed["UploadId"])))


async def _abort_uploads(fs: Any, started: list[tuple[str, str, str]]) -> None:
    for bucket, key, upload_id in started:
        try:
            await fs._abort_mpu(bucket, key, upload_id)
        except FileNotFoundError:  # already aborted (by s3fs on an error) or completed
            continue
        log.info("Aborted the unfinished multipart upload %s of s3://%s/%s", upload_id, bucket, key)


def _is_s3fs(fs: AbstractFileSystem) -> bool:
    return hasattr(fs, "_abort_mpu") and hasattr(fs, "set_session")


def _stored_size(fs: AbstractFileSystem, path: str) -> int | object | None:
    """The size of the object at ``path``, ``None`` if there is none, or :data:`_UNKNOWN` if the store
    cannot say (within :data:`CHECK_DEADLINE`)."""
    try:
        fs.invalidate_cache(path)
        info = _call(fs, "info", path, deadline=CHECK_DEADLINE)
    except FileNotFoundError:
        return None
    except Exception as exc:
        log.info("Could not ask the store whether %s is there: %s: %s", path, type(exc).__name__, exc)
        return _UNKNOWN
    return info.get("size") if info.get("type", "file") == "file" else None


def _bucket_exists(fs: AbstractFileSystem, root: str) -> bool | None:
    """Whether the bucket or container exists, or ``None`` if the store cannot say."""
    try:
        fs.invalidate_cache(root)
        return bool(_call(fs, "exists", root, deadline=CHECK_DEADLINE))
    except Exception:
        return None


_UNKNOWN = object()


def _s3_endpoint(fs: Any) -> str | None:
    """The S3 endpoint the filesystem talks to, when it is not AWS's own."""
    endpoint = getattr(fs, "endpoint_url", None) or (getattr(fs, "client_kwargs", None) or {}).get(
        "endpoint_url"
    )
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint or re.search(
        r"(^|\.)amazonaws\.com(\.cn)?(:\d+)?(/|$)", urlsplit(str(endpoint)).netloc + "/"
    ):
        return None
    return str(endpoint)


def _path(key: str) -> str:
    """Percent-encode an object key for a URL, keeping its ``/`` separators: spaces become ``%20``
    (never ``+``), non-ASCII characters their UTF-8 bytes, and ``?``, ``#``, ``;``, ``&``, ``=``,
    ``+`` and ``%`` are escaped so that a key can never end the path or start a parameter."""
    return quote(key, safe="/")


class StagedFile:
    """A temporary file that becomes the destination on :meth:`publish`, and vanishes otherwise."""

    def __init__(self, target: Destination) -> None:
        self.target = target
        self._temp_path: Path | None = None
        self._file: IO[bytes] | None = None

    @property
    def uri(self) -> str:
        return self.target.uri

    def __enter__(self) -> IO[bytes]:
        folder = self.target._temp_folder()
        name = folder / f"{self.target._temp_prefix()}{secrets.token_hex(_TOKEN_BYTES)}{_PART_SUFFIX}"
        try:
            # Mode 0o666 less the umask, as a plain open() would give: the published file is readable by
            # the transcoder or web server that the umask lets read it (mkstemp would make it 0600).
            handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise VeoInputError("destination", f"cannot write to {folder}: {exc}") from exc
        self._temp_path = name
        self._file = os.fdopen(handle, "wb")
        return self._file

    def publish(self) -> None:
        """Make the verified file the destination: a rename locally, a whole-file upload to a store."""
        assert self._file is not None and self._temp_path is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as exc:  # ENOSPC may only show when the last buffered bytes are flushed
            raise self.target.write_error(exc) from exc
        self.target._publish(self._temp_path)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self._temp_path is not None:
            self._temp_path.unlink(missing_ok=True)


def try_started_at(context: Any) -> float:
    """When the running try started (POSIX time), from the task instance; now when it does not say."""
    start = getattr(context.get("ti"), "start_date", None) if hasattr(context, "get") else None
    return start.timestamp() if start is not None and hasattr(start, "timestamp") else time.time()
