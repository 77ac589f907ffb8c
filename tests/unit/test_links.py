"""The "Stored video" extra link: console URLs for each store, and what the link reads."""

from __future__ import annotations

from typing import Any
from unittest import mock
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from airflow_provider_veo import get_provider_info
from airflow_provider_veo.links import STORED_VIDEO_URI_XCOM_KEY, VeoStoredVideoLink, console_url

S3 = "https://s3.console.aws.amazon.com/s3/object/"
GCS = "https://console.cloud.google.com/storage/browser/_details/"

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


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("s3://my-bucket/videos/fox.mp4", f"{S3}my-bucket?prefix=videos/fox.mp4"),
        ("s3a://my-bucket/fox.mp4", f"{S3}my-bucket?prefix=fox.mp4"),
        ("S3://my-bucket/fox.mp4", f"{S3}my-bucket?prefix=fox.mp4"),
        ("s3://b/a fox+a hen.mp4", f"{S3}b?prefix=a%20fox%2Ba%20hen.mp4"),
        ("gs://my-bucket/videos/fox.mp4", f"{GCS}my-bucket/videos/fox.mp4;tab=live_object"),
        ("gcs://my-bucket/fox.mp4", f"{GCS}my-bucket/fox.mp4;tab=live_object"),
        ("gs://b/vidéo 1.mp4", f"{GCS}b/vid%C3%A9o%201.mp4;tab=live_object"),
        ("gs://b/a;b?.mp4", f"{GCS}b/a%3Bb%3F.mp4;tab=live_object"),
        (
            "abfs://videos@acct01.dfs.core.windows.net/out/fox.mp4",
            "https://acct01.blob.core.windows.net/videos/out/fox.mp4",
        ),
        (
            "abfss://videos@acct01.dfs.core.windows.net/a fox.mp4",
            "https://acct01.blob.core.windows.net/videos/a%20fox.mp4",
        ),
        (
            "az://videos@acct01.blob.core.windows.net/fox.mp4",
            "https://acct01.blob.core.windows.net/videos/fox.mp4",
        ),
        (
            "wasbs://videos@acct01.blob.core.windows.net/fox.mp4",
            "https://acct01.blob.core.windows.net/videos/fox.mp4",
        ),
        (
            "abfs://videos@acct01.dfs.core.chinacloudapi.cn/fox.mp4",
            "https://acct01.blob.core.chinacloudapi.cn/videos/fox.mp4",
        ),
    ],
)
def test_console_url_of_each_store(uri: str, url: str) -> None:
    assert console_url(uri) == url


@pytest.mark.parametrize(
    "uri",
    [
        "file:///srv/videos/fox.mp4",
        "file://localhost/srv/videos/fox.mp4",
        "/srv/videos/fox.mp4",
        "relative/fox.mp4",
        "",
        "https://cdn.example.com/fox.mp4",
        "sftp://host/fox.mp4",
        "s3://bucket-only",
        "s3://bucket-only/",
        "gs:///no-bucket.mp4",
        "s3://user:secret@bucket/fox.mp4",
        "gs://token@bucket/fox.mp4",
        "s3://bucket:9000/fox.mp4",
        # Azure without the account in the URI: it is in the connection, which the URI leaves out.
        "abfs://videos/fox.mp4",
        "az://videos/fox.mp4",
        "abfs://videos@acct01.queue.core.windows.net/fox.mp4",
        "abfs://videos@evil.com#.dfs.core.windows.net/fox.mp4",
        "abfs://videos@x.dfs.core.windows.net/fox.mp4",
        "adl://acct01.azuredatalakestore.net/fox.mp4",
    ],
)
def test_no_console_url(uri: str) -> None:
    assert console_url(uri) == ""


@pytest.mark.parametrize("key", ODD_KEYS)
def test_s3_key_round_trips_through_the_query(key: str) -> None:
    url = console_url(f"s3://my-bucket/{key}")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "s3.console.aws.amazon.com",
        "/s3/object/my-bucket",
    )
    assert not parts.fragment
    assert " " not in url and "+" not in parts.query.replace("%2B", "")
    assert parse_qs(parts.query) == {"prefix": [key]}


@pytest.mark.parametrize("key", ODD_KEYS)
def test_gcs_key_round_trips_through_the_path(key: str) -> None:
    url = console_url(f"gs://my-bucket/{key}")
    parts = urlsplit(url)
    assert (parts.netloc, parts.query, parts.fragment) == ("console.cloud.google.com", "", "")
    encoded = parts.path.removeprefix("/storage/browser/_details/my-bucket/")
    encoded, _, tab = encoded.rpartition(";")
    assert tab == "tab=live_object"
    assert ";" not in encoded and " " not in encoded
    assert unquote(encoded) == key


@pytest.mark.parametrize("key", ODD_KEYS)
def test_azure_key_round_trips_through_the_path(key: str) -> None:
    url = console_url(f"abfs://videos@acct01.dfs.core.windows.net/{key}")
    parts = urlsplit(url)
    assert (parts.netloc, parts.query, parts.fragment) == ("acct01.blob.core.windows.net", "", "")
    assert unquote(parts.path.removeprefix("/videos/")) == key


def test_the_link_is_named_and_keyed() -> None:
    link = VeoStoredVideoLink()
    assert link.name == "Stored video"
    assert link.xcom_key == "_link_VeoStoredVideoLink" != STORED_VIDEO_URI_XCOM_KEY
    assert STORED_VIDEO_URI_XCOM_KEY == "stored_video_uri"


@pytest.mark.parametrize(
    ("pushed", "url"),
    [
        ("s3://my-bucket/videos/fox.mp4", f"{S3}my-bucket?prefix=videos/fox.mp4"),
        ("gs://my-bucket/fox.mp4", f"{GCS}my-bucket/fox.mp4;tab=live_object"),
        ("file:///srv/videos/fox.mp4", ""),
        (None, ""),  # nothing pushed yet: a task that failed before its destination was known
        ({"uri": "s3://b/k"}, ""),
        (42, ""),
    ],
)
def test_get_link_reads_the_pushed_uri(pushed: Any, url: str) -> None:
    ti_key = mock.Mock(dag_id="d", task_id="t", run_id="r", map_index=3, try_number=1)
    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", return_value=pushed) as get_value:
        assert VeoStoredVideoLink().get_link(mock.Mock(), ti_key=ti_key) == url
    get_value.assert_called_once_with(ti_key=ti_key, key=STORED_VIDEO_URI_XCOM_KEY)


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
