"""The "Stored video" extra link: the stored MP4's page in its object store's web console.

The download and generate operators push the destination's canonical URI (``s3://bucket/key``,
``gs://bucket/key``, ``abfs://container@account.dfs.core.windows.net/path``, ``file:///abs/path``)
to the XCom ``stored_video_uri`` as soon as it is known, before a generate task defers. At the end
of every run of the task process (success, failure or deferral) the Task SDK calls
:meth:`VeoStoredVideoLink.get_link` and stores the URL under the link's own XCom key, which the UI
reads: so a deferred task already shows where its video will land, and a task that never got that
far shows no link.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

__all__ = ["STORED_VIDEO_URI_XCOM_KEY", "VeoStoredVideoLink", "console_url"]

#: The XCom the operators push the destination's canonical URI to, and the link reads.
STORED_VIDEO_URI_XCOM_KEY = "stored_video_uri"

_S3_SCHEMES = frozenset({"s3", "s3a"})
_GCS_SCHEMES = frozenset({"gs", "gcs"})
#: adlfs's and Hadoop's spellings; ObjectStoragePath (the Azure provider's filesystem) uses abfs(s).
_AZURE_SCHEMES = frozenset({"abfs", "abfss", "az", "wasb", "wasbs"})
#: ``container@account.(dfs|blob).<cloud's suffix>``: Azure's rules for account names, a DNS suffix.
_AZURE_AUTHORITY = re.compile(
    r"(?P<container>[^@]+)@(?P<account>[a-z0-9]{3,24})\.(?:dfs|blob)\.(?P<suffix>[a-z0-9-]+(?:\.[a-z0-9-]+)+)"
)


def _path(key: str) -> str:
    """Percent-encode an object key for a URL, keeping its ``/`` separators: spaces become ``%20``
    (never ``+``), non-ASCII characters their UTF-8 bytes, and ``?``, ``#``, ``;``, ``&``, ``=``,
    ``+`` and ``%`` are escaped so that a key can never end the path or start a parameter."""
    return quote(key, safe="/")


def console_url(canonical_uri: str) -> str:
    """The web console page of the object at ``canonical_uri``, or ``""`` when there is none.

    - ``s3://bucket/key`` (or ``s3a``): the object's page in the S3 console. The console finds the
      bucket's region itself; the URI carries no partition, so China and GovCloud buckets are not
      addressed.
    - ``gs://bucket/key`` (or ``gcs``): the object's details page in the Google Cloud console,
      the page ``FileDetailsLink`` of Airflow's Google provider opens (without a ``project``, which
      the URI does not carry and the page does not need).
    - ``abfs[s]://container@account.dfs.core.windows.net/path`` (also ``az``, ``wasb[s]`` and
      ``.blob.`` hosts, any Azure cloud's suffix): the blob's URL,
      ``https://account.blob.core.windows.net/container/path``, as the portal shows it under
      "URL". The portal's own pages address a blob through the storage account's resource id
      (subscription and resource group), which no storage URI holds. Without the account
      (``abfs://container/path``, the account then being in the connection) there is no link.
    - ``file://``, a bare path, any other scheme, a bucket without a key, or a location with
      credentials in it: ``""``.

    The key is taken as written, not percent-decoded (as ``ObjectStoragePath`` prints it), and
    encoded here once for the URL.
    """
    scheme, separator, rest = canonical_uri.strip().partition("://")
    if not separator:
        return ""
    scheme = scheme.lower()
    authority, _, key = rest.partition("/")
    if not authority or not key or ":" in authority:
        return ""
    if scheme in _S3_SCHEMES and "@" not in authority:
        return f"https://s3.console.aws.amazon.com/s3/object/{quote(authority, safe='')}?prefix={_path(key)}"
    if scheme in _GCS_SCHEMES and "@" not in authority:
        return (
            "https://console.cloud.google.com/storage/browser/_details/"
            f"{quote(authority, safe='')}/{_path(key)};tab=live_object"
        )
    if scheme in _AZURE_SCHEMES:
        return _azure_blob_url(authority, key)
    return ""


def _azure_blob_url(authority: str, key: str) -> str:
    match = _AZURE_AUTHORITY.fullmatch(authority.lower())
    if match is None:
        return ""
    account, suffix = match["account"], match["suffix"]
    return f"https://{account}.blob.{suffix}/{quote(match['container'], safe='')}/{_path(key)}"


class VeoStoredVideoLink(BaseOperatorLink):
    """Operator extra link "Stored video": the stored MP4's page in the S3, GCS or Azure console.

    Attach it with ``operator_extra_links = (VeoStoredVideoLink(),)``. It reads the XCom
    :data:`STORED_VIDEO_URI_XCOM_KEY`; without it (nothing stored yet, or a task that failed
    before its destination was known), and for a local destination, the link is ``""`` and the UI
    shows none.
    """

    name: ClassVar[str] = "Stored video"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        uri = XCom.get_value(ti_key=ti_key, key=STORED_VIDEO_URI_XCOM_KEY)
        return console_url(uri) if isinstance(uri, str) else ""
