"""``--version``, ``/version`` and the build-info metric."""

from __future__ import annotations

import platform
import subprocess
import sys
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from mcs_apiserver import version
from mcs_apiserver.api.app import build_app
from mcs_apiserver.api.resources import Served
from mcs_apiserver.metrics import Metrics


def test_version_info_is_shaped_like_kubes_with_the_python_version(monkeypatch):
    version.version_info.cache_clear()
    monkeypatch.setenv(version.COMMIT_ENV, "0123456789abcdef")
    try:
        info = version.version_info()
    finally:
        version.version_info.cache_clear()
    assert info["gitVersion"].startswith("v") and info["gitVersion"][1:].startswith(f"{info['major']}.{info['minor']}")
    assert (info["gitCommit"], info["gitTreeState"]) == ("0123456789abcdef", "clean")
    assert info["pythonVersion"] == platform.python_version()
    assert info["platform"].startswith(sys.platform + "/")


def test_an_image_built_from_a_dirty_tree_says_so(monkeypatch):
    version.version_info.cache_clear()
    monkeypatch.setenv(version.COMMIT_ENV, "0123456789abcdef")
    monkeypatch.setenv(version.TREE_STATE_ENV, "dirty")
    try:
        info = version.version_info()
    finally:
        version.version_info.cache_clear()
    assert (info["gitCommit"], info["gitTreeState"]) == ("0123456789abcdef", "dirty")


def test_the_version_flag_prints_the_version_and_exits_0():
    proc = subprocess.run([sys.executable, "-m", "mcs_apiserver", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"mcs-apiserver {version.version_info()['gitVersion']}")


async def test_get_version_answers_the_version_info_as_json(aiohttp_client: Any):
    client = await aiohttp_client(build_app(Served({}), checks=[], metrics=Metrics()))
    response = await client.get("/version")
    assert response.status == 200
    assert orjson.loads(await response.read()) == version.version_info()


async def test_metrics_carry_the_build_info_and_process_metrics(aiohttp_client: Any):
    client = await aiohttp_client(build_app(Served({}), checks=[], metrics=Metrics()))
    text = await (await client.get("/metrics")).text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    build = families["mcs_apiserver_build_info"].samples[0]
    assert build.value == 1
    assert build.labels["version"] == version.version_info()["gitVersion"]
    assert build.labels["python_version"] == platform.python_version()
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert "python_info" in families
