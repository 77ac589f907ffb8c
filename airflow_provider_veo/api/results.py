"""What the provider hands back to a DAG once a video is stored: the download and generate results."""

from __future__ import annotations

import hashlib
from typing import TypedDict


class StoredVideo(TypedDict):
    """The return value (XCom) of the download and generate operators: where the MP4 is and what it is.

    ``model`` is the model the task asked for, the name results, manifests, usage and logs share;
    ``upstream_model`` is the API's own name for the job's model where it says another (the gateway's
    Gemini channels report Google's id, e.g. ``veo-3.1-fast-generate-preview``), else ``None``. A
    download task, which knows only the video id, names the model as the API reports it.
    ``seconds`` and ``size`` are what the API says of the job, or what was asked where it does not
    say (the gateway's Veo channels leave them out);
    ``duration_seconds``, ``width`` and ``height`` are read from the MP4 itself, ``None`` when its
    ``moov`` box does not say. ``prompt`` and ``input_reference`` say what made the file: the
    prompt whole up to :data:`PROMPT_EXCERPT_CHARS` characters, else its start and an ellipsis
    (``prompt_sha256`` is of the whole prompt), and the reference images' locations.
    ``asset_uri`` is the canonical location, without a connection id or credentials
    (``s3://bucket/key``, ``gs://bucket/key``, ``abfs://container@account.dfs.core.windows.net/path``,
    ``file:///abs/path``); ``uri`` reads it back with ``ObjectStoragePath``. The prompt fields are
    ``None`` for a download task, which knows only the video id.
    """

    video_id: str
    uri: str
    asset_uri: str
    bytes: int
    sha256: str
    content_type: str
    model: str | None
    upstream_model: str | None
    seconds: str | None
    size: str | None
    duration_seconds: float | None
    width: int | None
    height: int | None
    prompt: str | None
    prompt_sha256: str | None
    input_reference: list[str]
    #: What the task that made it spent (the ``usage`` XCom); ``None`` for a download task.
    usage: Usage | None


#: Prompts longer than this are carried as an excerpt (plus ``prompt_sha256``) in results and logs.
PROMPT_EXCERPT_CHARS = 300


class Usage(TypedDict):
    """The ``usage`` XCom of a task that submits jobs: what it asked for and how often it paid."""

    video_id: str
    model: str
    seconds: int | None
    size: str | None
    #: Create requests this task instance sent across all its tries (each may have started a paid job).
    create_requests: int
    try_number: int


def prompt_fields(prompt: str) -> tuple[str, str]:
    """The prompt as results and logs carry it (whole, or its start and an ellipsis), and its sha256."""
    digest = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()
    if len(prompt) <= PROMPT_EXCERPT_CHARS:
        return prompt, digest
    return prompt[: PROMPT_EXCERPT_CHARS - 1] + "…", digest


def model_names(asked: str | None, reported: str | None) -> tuple[str | None, str | None]:
    """The ``model`` and ``upstream_model`` of a result: the model asked for (else the one reported),
    and the API's name for it when that is another."""
    model = asked or reported
    return model, reported if reported and reported != model else None
