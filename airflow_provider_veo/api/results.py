"""What the provider hands back to a DAG once a video is stored: the download and generate results."""

from __future__ import annotations

from typing import TypedDict


class StoredVideo(TypedDict):
    """The return value (XCom) of the download and generate operators: where the MP4 is and what it is.

    ``model``, ``seconds`` and ``size`` are what the API says of the job (the gateway's Veo channels
    leave ``seconds`` and ``size`` out); ``duration_seconds``, ``width`` and ``height`` are read from
    the MP4 itself, ``None`` when its ``moov`` box does not say.
    """

    video_id: str
    uri: str
    bytes: int
    sha256: str
    content_type: str
    model: str | None
    seconds: str | None
    size: str | None
    duration_seconds: float | None
    width: int | None
    height: int | None
