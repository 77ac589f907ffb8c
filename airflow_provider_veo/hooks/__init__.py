"""Hooks of the CometAPI Veo provider, and the accessor the operators and the sensor reach them by."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_veo.hooks.veo import VeoHook

__all__ = ["VeoHookMixin"]


class VeoHookMixin:
    """The one hook accessor of the operators and the sensor.

    The hook module (requests) is imported on first use, in the worker, so that parsing a DAG file
    that uses these operators stays cheap.
    """

    veo_conn_id: str

    @cached_property
    def hook(self) -> VeoHook:
        from airflow_provider_veo.hooks.veo import VeoHook

        return VeoHook(veo_conn_id=self.veo_conn_id)
