"""Provider registration: what Airflow's providers manager reads."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_veo
from airflow_provider_veo import get_provider_info
from airflow_provider_veo.hooks.veo import VeoHook


def _distribution() -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution("airflow-provider-veo")
    except importlib.metadata.PackageNotFoundError:
        return None


def test_package_name_is_the_distribution_name() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-veo"
    assert info["versions"][0] == airflow_provider_veo.__version__
    dist = _distribution()
    if dist is not None and dist.metadata["Name"]:
        assert dist.metadata["Name"].lower().replace("_", "-") == info["package-name"]


def test_connection_type_entry() -> None:
    [entry] = get_provider_info()["connection-types"]
    assert entry["connection-type"] == "veo" == VeoHook.conn_type
    module_name, _, class_name = entry["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module_name), class_name) is VeoHook
    assert entry["hook-name"] == VeoHook.hook_name
    behaviour = entry["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "port", "login", "extra"}
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Key"}
    assert "conn-fields" in entry


def test_provider_info_agrees_with_the_hook() -> None:
    [entry] = get_provider_info()["connection-types"]
    hook_behaviour = VeoHook.get_ui_field_behaviour()
    assert entry["ui-field-behaviour"]["hidden-fields"] == hook_behaviour["hidden_fields"]
    assert entry["ui-field-behaviour"]["relabeling"] == hook_behaviour["relabeling"]


@pytest.mark.parametrize("section", ["hooks", "operators", "sensors", "triggers"])
def test_declared_modules_import(section: str) -> None:
    declared = get_provider_info()[section]
    modules = [module for entry in declared for module in entry["python-modules"]]
    assert modules
    for module in modules:
        importlib.import_module(module)


def test_declared_trigger_module_holds_the_trigger() -> None:
    from airflow_provider_veo.triggers.veo import VeoTaskTrigger

    [entry] = get_provider_info()["triggers"]
    classpath = VeoTaskTrigger(video_id="x", end_time=0).serialize()[0]
    assert classpath.rpartition(".")[0] in entry["python-modules"]


def test_provider_info_is_json() -> None:
    info = get_provider_info()
    assert json.loads(json.dumps(info)) == info
    integrations = {i["integration-name"] for i in info["integrations"]}
    for section in ("hooks", "operators", "sensors", "triggers"):
        assert {entry["integration-name"] for entry in info[section]} <= integrations


@pytest.mark.skipif(_distribution() is None, reason="the provider is not installed in this environment")
def test_entry_point_registered() -> None:
    entry_points = importlib.metadata.entry_points(group="apache_airflow_provider")
    [ours] = [ep for ep in entry_points if ep.value.startswith("airflow_provider_veo")]
    assert ours.load()()["package-name"] == "airflow-provider-veo"


@pytest.mark.skipif(_distribution() is None, reason="the provider is not installed in this environment")
def test_airflow_providers_list_shows_it(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [listing] = [line for line in result.stdout.splitlines() if line.startswith("[{")]
    providers = {p["package_name"]: p for p in json.loads(listing)}
    assert "airflow-provider-veo" in providers, sorted(providers)
    assert providers["airflow-provider-veo"]["version"] == airflow_provider_veo.__version__
