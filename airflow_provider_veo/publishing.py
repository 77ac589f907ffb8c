"""What a stored video tells the rest of Airflow and its readers: asset events, lineage, a manifest.

The download and generate operators call these once the MP4 is published. Each is optional in its
own way: asset events go only to the task's ``outlets``, the manifest only with ``write_manifest``,
and OpenLineage facets only where the OpenLineage provider is installed (imported lazily through
``airflow.providers.common.compat``, so nothing here is needed to run without it).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from airflow_provider_veo.api import StoredVideo, VideoJob, VideoRequest, reference_kind

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow.sdk import Context

    from airflow_provider_veo.destinations import Destination


def asset_extra(stored: StoredVideo) -> dict[str, Any]:
    """The ``extra`` of a video's asset event: enough for a downstream DAG to use the file."""
    return {
        "video_id": stored["video_id"],
        "uri": stored["uri"],
        "asset_uri": stored["asset_uri"],
        "sha256": stored["sha256"],
        "bytes": stored["bytes"],
        "model": stored["model"],
        "seconds": stored["seconds"],
        "size": stored["size"],
        "duration_seconds": stored["duration_seconds"],
        "width": stored["width"],
        "height": stored["height"],
        "prompt": stored["prompt"],
        "prompt_sha256": stored["prompt_sha256"],
    }


def emit_asset_events(context: Context, outlets: list[Any], stored: StoredVideo) -> None:
    """Describe the video on each ``Asset`` outlet's event; add one ``Asset`` per video to each alias.

    A DAG scheduled on the alias then runs once per stored video (a mapped generate task included)
    and finds the file in its triggering event.
    """
    if not outlets:
        return
    from airflow.sdk import Asset, AssetAlias

    extra = asset_extra(stored)
    events = context["outlet_events"]
    for outlet in outlets:
        if isinstance(outlet, AssetAlias):
            events[outlet].add(Asset(stored["asset_uri"]), extra=extra)
        elif isinstance(outlet, Asset):
            events[outlet].extra.update(extra)


def videos_from_events(triggering_asset_events: Mapping[Any, Iterable[Any]]) -> list[dict[str, Any]]:
    """Each video of a downstream run's ``triggering_asset_events``, once, in the order they came.

    One run may carry several videos (events queued while the DAG waited, a mapped task's videos).
    Every event is listed under each key that scheduled the DAG (an ``AssetAlias`` event also under
    its ``Asset``), so reading them all naively sees a video twice: they are told apart here by
    ``video_id`` (then by the asset URI). Each item is the event's ``extra``, see :func:`asset_extra`.
    """
    seen: set[str] = set()
    videos = []
    for events in triggering_asset_events.values():
        for event in events:
            extra = dict(getattr(event, "extra", None) or {})
            identity = extra.get("video_id") or extra.get("asset_uri")
            if not identity or identity in seen:
                continue
            seen.add(identity)
            videos.append(extra)
    return videos


def write_manifest(
    target: Destination,
    stored: StoredVideo,
    job: VideoJob,
    request: VideoRequest | None,
    reference_sha256s: list[str],
) -> str:
    """Write ``<video>.json`` beside the published MP4, so a bucket read outside Airflow says what made it."""
    manifest = {
        "video_id": stored["video_id"],
        "prompt": request.prompt if request else None,
        "model": stored["model"],
        "upstream_model": stored["upstream_model"],
        "seconds": stored["seconds"],
        "size": stored["size"],
        "input_reference": [
            {"location": location, "sha256": digest}
            for location, digest in zip(stored["input_reference"], reference_sha256s, strict=False)
        ],
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "bytes": stored["bytes"],
        "sha256": stored["sha256"],
        "duration_seconds": stored["duration_seconds"],
        "width": stored["width"],
        "height": stored["height"],
        "uri": stored["uri"],
    }
    return target.sidecar().write_bytes(json.dumps(manifest, ensure_ascii=False, indent=2).encode())


def reference_sha256s(images: list[tuple[str, bytes, str]]) -> list[str]:
    return [hashlib.sha256(content).hexdigest() for _, content, _ in images]


def openlineage_facets(stored: StoredVideo | None) -> Any:
    """The stored video as the output dataset, the reference images as inputs, the video id as the
    run's external query id; ``None`` before anything was stored."""
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        ExternalQueryRunFacet,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    if stored is None:
        return OperatorLineage()
    namespace, name = _namespace_and_name(stored["asset_uri"])
    output = OutputDataset(
        namespace=namespace,
        name=name,
        outputFacets={
            "outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=1, size=stored["bytes"])
        },
    )
    locations = map(_as_uri, stored["input_reference"])
    inputs = [Dataset(namespace=n, name=path) for n, path in map(_namespace_and_name, locations)]
    return OperatorLineage(
        inputs=inputs,
        outputs=[output],
        run_facets={
            "externalQuery": ExternalQueryRunFacet(externalQueryId=stored["video_id"], source="cometapi")
        },
    )


def record_hook_lineage(context_owner: Any, stored: StoredVideo) -> None:
    """Hook-level lineage: the stored video and the reference images. The provider reads and writes
    through the filesystems themselves, not ``ObjectStoragePath``, which would record them."""
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    collector = get_hook_lineage_collector()  # type: ignore[no-untyped-call]
    collector.add_output_asset(context=context_owner, uri=stored["asset_uri"])
    for location in stored["input_reference"]:
        collector.add_input_asset(context=context_owner, uri=_as_uri(location))


def _as_uri(location: str) -> str:
    """A reference image's location as a URI: local paths become ``file://`` URIs, object store URIs
    their canonical form (without a connection id), http(s) URLs stay as they are."""
    from airflow_provider_veo.destinations import parse_destination

    kind = reference_kind(location)
    return location if kind == "url" else parse_destination(location).canonical_uri


def _namespace_and_name(uri: str) -> tuple[str, str]:
    """OpenLineage's naming: ``s3://bucket`` and ``key``, ``file`` and ``/abs/path``, ``https://host``
    and ``path``."""
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        return "file", rest
    authority, _, path = rest.partition("/")
    return f"{scheme}://{authority}", path
