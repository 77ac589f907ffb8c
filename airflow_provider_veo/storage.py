"""Where a downloaded video lands: a local path or any Airflow object store, written all-or-nothing.

The bytes go to a temporary file first. A local destination gets it renamed into place; an object
store gets it uploaded only once the download has been verified, so a failure never leaves a partial
video where readers look for finished ones.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, TypeGuard, cast

from airflow_provider_veo.api import VeoInputError, video_filename

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

_UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024


def _object_path(destination: str) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(destination)


def resolve_destination(destination: str | os.PathLike[str], video_id: str) -> Path | ObjectStoragePath:
    """The final location: a folder (ending in ``/`` or existing) gets ``<safe id>.mp4`` inside it."""
    text = os.fspath(destination).strip() if destination is not None else ""
    if not text:
        raise VeoInputError("destination", "a local path or an object storage URI is required")
    is_folder = text.endswith("/")
    if "://" in text and not text.lower().startswith("file://"):
        target = _object_path(text)
        return target / video_filename(video_id) if is_folder else target
    local = Path(_object_path(text).path if text.lower().startswith("file://") else text).expanduser()
    if is_folder or local.is_dir():
        return local / video_filename(video_id)
    return local


def check_destination(destination: str | os.PathLike[str]) -> None:
    """Refuse, before a paid job is submitted, a destination the download could never write to.

    Empty, or local with a folder that cannot be created because its nearest existing ancestor is
    a file. Permissions and object stores are left to the download, which reports them the same way.
    """
    target = resolve_destination(destination, "check")
    if not _is_local(target):
        return
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise VeoInputError("destination", f"cannot create folder {target.parent}: {ancestor} is a file")


def write_error(target: Path | ObjectStoragePath, exc: OSError) -> VeoInputError:
    """The error for a failed local write (a full disk, a vanished folder): nothing is left behind."""
    where = target.parent if _is_local(target) else "the temp folder"
    return VeoInputError("destination", f"cannot write the video to {where}: {exc}; nothing was left there")


def canonical_uri(target: Path | ObjectStoragePath) -> str:
    """Where the file is, without a connection id or credentials: ``file:///abs/path``,
    ``s3://bucket/key``, ``gs://bucket/key``. Assets and lineage name a stored video by it."""
    if _is_local(target):
        return target.resolve().as_uri()
    remote = cast("ObjectStoragePath", target)
    return f"{remote.protocol}://{remote.path.lstrip('/')}"


def sidecar_of(target: Path | ObjectStoragePath) -> Path | ObjectStoragePath:
    """The manifest's location beside a video: ``clip.mp4`` -> ``clip.json``."""
    return target.with_suffix(".json")


def write_all_or_nothing(target: Path | ObjectStoragePath, content: bytes) -> str:
    """Write a small file (a manifest, a summary) the way videos are written; returns its ``uri``."""
    staged = StagedFile(target)
    with staged as sink:
        try:
            sink.write(content)
        except OSError as exc:
            raise write_error(target, exc) from exc
        staged.publish()
    return staged.uri


def _is_local(target: Path | ObjectStoragePath) -> TypeGuard[Path]:
    """A plain local path. On Airflow 3.1 (universal_pathlib 0.2) ObjectStoragePath subclasses Path too."""
    return isinstance(target, Path) and not getattr(target, "protocol", "")


class StagedFile:
    """A temporary file that becomes the destination on :meth:`publish`, and vanishes otherwise."""

    def __init__(self, target: Path | ObjectStoragePath) -> None:
        self.target = target
        self._temp_path: Path | None = None
        self._file: IO[bytes] | None = None

    @property
    def uri(self) -> str:
        """The destination as users write it: a local path, or the object store URI."""
        return str(self.target.resolve()) if _is_local(self.target) else str(self.target)

    def __enter__(self) -> IO[bytes]:
        folder: Path | None = None
        if _is_local(self.target):
            folder = self.target.parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise VeoInputError("destination", f"cannot create folder {folder}: {exc}") from exc
        name = Path(folder or tempfile.gettempdir()) / f".{self.target.name}.{secrets.token_hex(6)}.part"
        try:
            # Mode 0o666 less the umask, as a plain open() would give: the published file is readable by
            # the transcoder or web server that the umask lets read it (mkstemp would make it 0600).
            handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise VeoInputError(
                "destination", f"cannot write to {folder or 'the temp folder'}: {exc}"
            ) from exc
        self._temp_path = name
        self._file = os.fdopen(handle, "wb")
        return self._file

    def publish(self) -> None:
        """Move the finished file into place: a rename locally, an upload to an object store."""
        assert self._file is not None and self._temp_path is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as exc:  # ENOSPC may only show when the last buffered bytes are flushed
            raise write_error(self.target, exc) from exc
        if _is_local(self.target):
            os.replace(self._temp_path, self.target)
            return
        try:
            with self._temp_path.open("rb") as source, self.target.open("wb") as sink:
                shutil.copyfileobj(source, sink, _UPLOAD_CHUNK_BYTES)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: the upload's own error is what matters
                self.target.unlink(missing_ok=True)
            raise

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
