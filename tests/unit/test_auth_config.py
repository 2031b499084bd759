"""The extension-apiserver-authentication ConfigMap: parsing, and the watcher that keeps it current."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from certs import pki
from mcs_apiserver.auth.settings import AuthSettings
from mcs_apiserver.auth.config import (
    AuthenticationConfig,
    AuthenticationConfigWatcher,
    ConfigError,
    parse_configmap,
)
from mcs_apiserver.kube.client import ApiError
from mcs_apiserver.tls import ServerTLS


@pytest.fixture(scope="module")
def client_ca() -> pki.CertKey:
    return pki.new_ca("client-ca")


@pytest.fixture(scope="module")
def front_proxy_ca() -> pki.CertKey:
    return pki.new_ca("front-proxy-ca")


def configmap(data: dict[str, str], resource_version: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system",
                     "resourceVersion": resource_version},
        "data": data,
    }


def kube_apiserver_data(client_ca: pki.CertKey, front_proxy_ca: pki.CertKey) -> dict[str, str]:
    """What kube-apiserver writes with the usual aggregation flags."""
    return {
        "client-ca-file": client_ca.cert_pem().decode(),
        "requestheader-client-ca-file": front_proxy_ca.cert_pem().decode(),
        "requestheader-allowed-names": '["front-proxy-client"]',
        "requestheader-username-headers": '["X-Remote-User"]',
        "requestheader-group-headers": '["X-Remote-Group"]',
        "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
    }


# --- parsing -------------------------------------------------------------------------------------


def test_the_configmap_kube_apiserver_writes_is_read_completely(client_ca, front_proxy_ca):
    config = parse_configmap(configmap(kube_apiserver_data(client_ca, front_proxy_ca)))
    assert config.client_ca == (client_ca.cert,)
    assert config.requestheader_ca == (front_proxy_ca.cert,)
    assert config.allowed_names == frozenset({"front-proxy-client"})
    assert config.username_headers == ("X-Remote-User",)
    assert config.group_headers == ("X-Remote-Group",)
    assert config.uid_headers == ()
    assert config.extra_headers_prefixes == ("x-remote-extra-",)


def test_without_requestheader_keys_no_front_proxy_is_trusted(client_ca):
    config = parse_configmap(configmap({"client-ca-file": client_ca.cert_pem().decode()}))
    assert config.client_ca == (client_ca.cert,)
    assert config.requestheader_ca == ()
    assert config.username_headers == ()


def test_a_configmap_without_data_authenticates_no_one():
    assert parse_configmap({"metadata": {"name": "x"}}) == AuthenticationConfig()


@pytest.mark.parametrize("value", ["", "null", "[]"])
def test_empty_null_and_empty_array_lists_mean_not_configured(value):
    config = parse_configmap(configmap({"requestheader-allowed-names": value,
                                        "requestheader-uid-headers": value}))
    assert config.allowed_names == frozenset()
    assert config.uid_headers == ()


def test_header_names_are_trimmed_and_an_empty_one_is_an_error():
    config = parse_configmap(configmap({"requestheader-username-headers": '[" X-Remote-User ", "X-User"]'}))
    assert config.username_headers == ("X-Remote-User", "X-User")
    with pytest.raises(ConfigError, match="requestheader-group-headers: empty header"):
        parse_configmap(configmap({"requestheader-group-headers": '["X-Remote-Group", "  "]'}))


@pytest.mark.parametrize("value", ["X-Remote-User", '{"a": 1}', '["X-Remote-User", 3]', "[unclosed"])
def test_a_list_that_is_not_a_json_array_of_strings_is_an_error_naming_the_key(value):
    with pytest.raises(ConfigError, match="requestheader-username-headers"):
        parse_configmap(configmap({"requestheader-username-headers": value}))


def test_a_bundle_of_several_cas_keeps_them_all(client_ca, front_proxy_ca):
    bundle = (client_ca.cert_pem() + front_proxy_ca.cert_pem()).decode()
    config = parse_configmap(configmap({"client-ca-file": bundle}))
    assert config.client_ca == (client_ca.cert, front_proxy_ca.cert)


def test_a_ca_bundle_that_is_not_pem_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="requestheader-client-ca-file"):
        parse_configmap(configmap({"requestheader-client-ca-file": "-----BEGIN CERTIFICATE-----\nnope\n"}))


def test_the_tls_bundle_is_the_union_of_both_cas_without_duplicates(client_ca, front_proxy_ca):
    data = kube_apiserver_data(client_ca, front_proxy_ca)
    data["client-ca-file"] += front_proxy_ca.cert_pem().decode()  # the same CA in both keys
    bundle = parse_configmap(configmap(data)).client_ca_bundle()
    assert bundle == client_ca.cert_pem() + front_proxy_ca.cert_pem()


# --- the watcher ---------------------------------------------------------------------------------


class ScriptedClient:
    """Plays back list answers and watch streams (lists of events), each possibly an exception."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.list_params: list[dict[str, str]] = []
        self.watch_params: list[dict[str, str]] = []

    async def json(self, method: str, path: str, *, params: dict[str, str] | None = None, **_: Any) -> Any:
        assert (method, path) == ("GET", "/api/v1/namespaces/kube-system/configmaps")
        self.list_params.append(dict(params or {}))
        if not self.lists:
            await asyncio.Event().wait()
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def watch(self, path: str, params: dict[str, str], **_: Any) -> AsyncIterator[dict[str, Any]]:
        self.watch_params.append(dict(params))
        if not self.watches:
            await asyncio.Event().wait()
        stream = self.watches.pop(0)
        if isinstance(stream, Exception):
            raise stream
        for event in stream:
            yield event


def listing(*items: dict[str, Any], resource_version: str = "10") -> dict[str, Any]:
    return {"kind": "ConfigMapList", "metadata": {"resourceVersion": resource_version}, "items": list(items)}


@pytest.fixture
def tls(tmp_path: Path) -> ServerTLS:
    ca = pki.new_ca("serving-ca")
    dns, ips = pki.serving_names("mcs-apiserver", "mcs-system")
    serving = pki.issue_serving_cert(ca, common_name="mcs", dns_names=dns, ip_addresses=ips)
    pki.write_cert_key(serving, tmp_path / "tls.crt", tmp_path / "tls.key")
    return ServerTLS(tmp_path / "tls.crt", tmp_path / "tls.key")


#: Retries without waiting.
FAST = AuthSettings(review_first_retry_delay=0.0, config_first_backoff=0.001)


async def run_until(watcher: AuthenticationConfigWatcher, condition, timeout: float = 2.0) -> None:
    task = asyncio.create_task(watcher.run())
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.001)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_watcher_loads_the_configmap_and_trusts_both_cas_in_tls(client_ca, front_proxy_ca, tls):
    client = ScriptedClient([listing(configmap(kube_apiserver_data(client_ca, front_proxy_ca)))], [])
    watcher = AuthenticationConfigWatcher(client, settings=FAST, tls=tls)
    assert not watcher.loaded

    await run_until(watcher, lambda: watcher.loaded)

    assert watcher.config.allowed_names == frozenset({"front-proxy-client"})
    assert client.list_params == [{"fieldSelector": "metadata.name=extension-apiserver-authentication"}]
    trusted = {c["subject"][0][0][1] for c in tls.current.get_ca_certs()}
    assert trusted == {"client-ca", "front-proxy-ca"}


async def test_the_watch_starts_at_the_list_resource_version_with_the_name_selector(client_ca, front_proxy_ca):
    client = ScriptedClient([listing(configmap(kube_apiserver_data(client_ca, front_proxy_ca)),
                                     resource_version="42")], [])
    watcher = AuthenticationConfigWatcher(client, settings=FAST)
    await run_until(watcher, lambda: client.watch_params)
    assert client.watch_params[0]["resourceVersion"] == "42"
    assert client.watch_params[0]["fieldSelector"] == "metadata.name=extension-apiserver-authentication"
    assert client.watch_params[0]["allowWatchBookmarks"] == "true"


async def test_a_modified_configmap_replaces_the_config_and_the_tls_cas(client_ca, front_proxy_ca, tls):
    rotated_front_proxy_ca = pki.new_ca("rotated-front-proxy-ca")
    data = kube_apiserver_data(client_ca, front_proxy_ca)
    rotated = dict(data, **{"requestheader-client-ca-file": rotated_front_proxy_ca.cert_pem().decode(),
                            "requestheader-allowed-names": '["front-proxy-client", "aggregator"]'})
    client = ScriptedClient([listing(configmap(data))],
                            [[{"type": "MODIFIED", "object": configmap(rotated, "11")}]])
    watcher = AuthenticationConfigWatcher(client, settings=FAST, tls=tls)

    await run_until(watcher, lambda: watcher.config.requestheader_ca == (rotated_front_proxy_ca.cert,))

    assert watcher.config.allowed_names == frozenset({"front-proxy-client", "aggregator"})
    trusted = {c["subject"][0][0][1] for c in tls.current.get_ca_certs()}
    assert trusted == {"client-ca", "rotated-front-proxy-ca"}


async def test_a_watch_expired_with_410_relists(client_ca, front_proxy_ca):
    data = kube_apiserver_data(client_ca, front_proxy_ca)
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}
    client = ScriptedClient([listing(configmap(data)), listing(configmap(data), resource_version="99")], [[gone]])
    watcher = AuthenticationConfigWatcher(client, settings=FAST)
    await run_until(watcher, lambda: len(client.watch_params) == 2)
    assert len(client.list_params) == 2
    assert client.watch_params[1]["resourceVersion"] == "99"


async def test_a_watch_that_ends_is_reopened_from_the_last_resource_version_without_a_relist(
    client_ca, front_proxy_ca
):
    data = kube_apiserver_data(client_ca, front_proxy_ca)
    bookmark = {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "57"}}}
    client = ScriptedClient([listing(configmap(data))], [[bookmark]])
    watcher = AuthenticationConfigWatcher(client, settings=FAST)
    await run_until(watcher, lambda: len(client.watch_params) == 2)
    assert client.watch_params[1]["resourceVersion"] == "57"
    assert len(client.list_params) == 1


async def test_a_deleted_configmap_keeps_the_last_known_config(client_ca, front_proxy_ca, caplog):
    data = kube_apiserver_data(client_ca, front_proxy_ca)
    client = ScriptedClient([listing(configmap(data))], [[{"type": "DELETED", "object": configmap(data, "12")}]])
    watcher = AuthenticationConfigWatcher(client, settings=FAST)
    caplog.set_level(logging.WARNING, logger="mcs_apiserver.auth.config")
    await run_until(watcher, lambda: "was deleted" in caplog.text)
    assert watcher.loaded
    assert watcher.config.requestheader_ca == (front_proxy_ca.cert,)


async def test_an_invalid_configmap_keeps_the_previous_config_and_says_why(client_ca, front_proxy_ca, caplog):
    data = kube_apiserver_data(client_ca, front_proxy_ca)
    broken = dict(data, **{"requestheader-username-headers": "X-Remote-User"})
    client = ScriptedClient([listing(configmap(data))], [[{"type": "MODIFIED", "object": configmap(broken, "13")}]])
    watcher = AuthenticationConfigWatcher(client, settings=FAST)
    caplog.set_level(logging.WARNING, logger="mcs_apiserver.auth.config")
    await run_until(watcher, lambda: "is invalid" in caplog.text)
    assert watcher.config.username_headers == ("X-Remote-User",)
    assert "requestheader-username-headers" in caplog.text


async def test_a_missing_configmap_is_reported_once_and_loaded_when_it_appears(client_ca, front_proxy_ca, caplog):
    data = kube_apiserver_data(client_ca, front_proxy_ca)
    client = ScriptedClient([listing()], [[{"type": "ADDED", "object": configmap(data, "14")}]])
    watcher = AuthenticationConfigWatcher(client, settings=FAST)
    caplog.set_level(logging.INFO, logger="mcs_apiserver.auth.config")
    await run_until(watcher, lambda: watcher.loaded)
    assert len([r for r in caplog.records if "not found" in r.getMessage()]) == 1
    assert watcher.config.client_ca == (client_ca.cert,)


async def test_permission_denied_is_reported_with_the_role_to_bind_and_retried(client_ca, front_proxy_ca, caplog):
    denied = ApiError(403, {"kind": "Status", "code": 403, "reason": "Forbidden",
                            "message": 'configmaps is forbidden: User "mcs" cannot list resource "configmaps"'})
    data = kube_apiserver_data(client_ca, front_proxy_ca)
    client = ScriptedClient([denied, denied, listing(configmap(data))], [])
    watcher = AuthenticationConfigWatcher(client, settings=FAST)
    caplog.set_level(logging.WARNING, logger="mcs_apiserver.auth.config")
    await run_until(watcher, lambda: watcher.loaded)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once while it lasts, not once per retry
    assert "extension-apiserver-authentication-reader" in warnings[0]


async def test_a_broken_list_answer_is_retried_not_fatal(client_ca, front_proxy_ca):
    data = kube_apiserver_data(client_ca, front_proxy_ca)
    client = ScriptedClient([json.JSONDecodeError("bad", "x", 0), listing(configmap(data))], [])
    watcher = AuthenticationConfigWatcher(client, settings=FAST)
    await run_until(watcher, lambda: watcher.loaded)
    assert len(client.list_params) == 2


async def test_wait_loaded_returns_once_the_configmap_is_read(client_ca, front_proxy_ca):
    client = ScriptedClient([listing(configmap(kube_apiserver_data(client_ca, front_proxy_ca)))], [])
    watcher = AuthenticationConfigWatcher(client, settings=FAST)
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.wait_for(watcher.wait_loaded(), 2)
        assert watcher.config.client_ca == (client_ca.cert,)
    finally:
        task.cancel()
