"""The "Stored video" extra link: what it reads. The URLs of each store: test_destinations.py."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from airflow_provider_veo import get_provider_info
from airflow_provider_veo.links import (
    STORED_VIDEO_URI_XCOM_KEY,
    STORED_VIDEO_URL_XCOM_KEY,
    VeoStoredVideoLink,
)

S3 = "https://s3.console.aws.amazon.com/s3/object/"


def test_the_link_is_named_and_keyed() -> None:
    link = VeoStoredVideoLink()
    assert link.name == "Stored video"
    assert (
        link.xcom_key
        == "_link_VeoStoredVideoLink"
        not in (STORED_VIDEO_URI_XCOM_KEY, STORED_VIDEO_URL_XCOM_KEY)
    )
    assert (STORED_VIDEO_URI_XCOM_KEY, STORED_VIDEO_URL_XCOM_KEY) == ("stored_video_uri", "stored_video_url")


@pytest.mark.parametrize(
    ("pushed", "url"),
    [
        (f"{S3}my-bucket?prefix=videos/fox.mp4", f"{S3}my-bucket?prefix=videos/fox.mp4"),
        ("http://127.0.0.1:9000/media/fox.mp4", "http://127.0.0.1:9000/media/fox.mp4"),
        ("", ""),  # a local file
        ("javascript:alert(1)", ""),
        ("s3://my-bucket/videos/fox.mp4", ""),
        (None, ""),  # nothing pushed yet: a task that failed before its destination was known
        ({"uri": "s3://b/k"}, ""),
        (42, ""),
    ],
)
def test_get_link_reads_the_pushed_url(pushed: Any, url: str) -> None:
    ti_key = mock.Mock(dag_id="d", task_id="t", run_id="r", map_index=3, try_number=1)
    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", return_value=pushed) as get_value:
        assert VeoStoredVideoLink().get_link(mock.Mock(), ti_key=ti_key) == url
    get_value.assert_called_once_with(ti_key=ti_key, key=STORED_VIDEO_URL_XCOM_KEY)


def test_registered_in_the_provider_info() -> None:
    [classpath] = get_provider_info()["extra-links"]
    module, _, name = classpath.rpartition(".")
    assert (module, name) == (VeoStoredVideoLink.__module__, VeoStoredVideoLink.__name__)


def test_serialized_as_the_ui_reads_it() -> None:
    """Airflow 3's API server never calls get_link: it reads the link's XCom by the serialized key."""
    from airflow.sdk import BaseOperator
    from airflow.serialization.serialized_objects import BaseSerialization

    class WithLink(BaseOperator):
        operator_extra_links = (VeoStoredVideoLink(),)

    serialized = BaseSerialization.serialize(WithLink(task_id="stored"))
    assert serialized["__var"]["_operator_extra_links"] == {"Stored video": "_link_VeoStoredVideoLink"}
