"""Where downloads land, and how they get there all-or-nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from airflow_provider_veo.api import VeoInputError, video_filename
from airflow_provider_veo.storage import StagedFile, resolve_destination

VIDEO_ID = "veo3.1:1764905797-816jUFZAkM"


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


def test_object_store_folder_gets_safe_name(memory_bucket: str) -> None:
    target = resolve_destination(f"memory://{memory_bucket}/videos/", VIDEO_ID)
    assert not isinstance(target, Path) or getattr(target, "protocol", "") == "memory"
    assert target.name == video_filename(VIDEO_ID)
    assert resolve_destination(f"memory://{memory_bucket}/a/clip.mp4", VIDEO_ID).name == "clip.mp4"


def test_object_store_upload_only_on_publish(
    memory_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the staged bytes go
    target = resolve_destination(f"memory://{memory_bucket}/videos/", VIDEO_ID)
    staged = StagedFile(target)
    with staged as sink:
        sink.write(b"all of it")
        assert not target.exists()
        assert len(list(tmp_path.iterdir())) == 1
        staged.publish()
    assert target.read_bytes() == b"all of it"
    assert staged.uri.startswith("memory://")
    assert staged.uri.endswith(f"{memory_bucket}/videos/{video_filename(VIDEO_ID)}")
    assert list(tmp_path.iterdir()) == []


def test_object_store_nothing_on_exception(
    memory_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    target = resolve_destination(f"memory://{memory_bucket}/videos/clip.mp4", VIDEO_ID)
    with pytest.raises(RuntimeError), StagedFile(target) as sink:
        sink.write(b"partial")
        raise RuntimeError
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
