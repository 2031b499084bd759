"""Who may authenticate to us, read from ``kube-system/extension-apiserver-authentication``.

kube-apiserver publishes its client CA and its front-proxy (requestheader) settings in that
ConfigMap precisely so that aggregated API servers can authenticate what it proxies to them, and
keeps it current (several kube-apiservers merge their values into it, CAs rotate). So it is
watched, not read once: a new CA must be trusted by the next TLS handshake, without a restart.

A ConfigMap that cannot be parsed keeps the previous configuration, and a deleted one too (like
kube-apiserver's own controllers): kube-apiserver recreates it within a minute, and until then the
last known CAs are still the right ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mcs_apiserver.auth.settings import AuthSettings
from mcs_apiserver.kube.client import ApiError, KubeClient
from mcs_apiserver.tls import ServerTLS

__all__ = [
    "CONFIGMAP_NAME",
    "CONFIGMAP_NAMESPACE",
    "AuthenticationConfig",
    "AuthenticationConfigWatcher",
    "ConfigError",
    "parse_configmap",
]

log = logging.getLogger("mcs_apiserver.auth.config")

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "extension-apiserver-authentication"



class ConfigError(ValueError):
    """The ConfigMap holds a value kube-apiserver would never write (bad PEM, bad JSON array)."""


@dataclass(frozen=True, slots=True)
class AuthenticationConfig:
    """What the ConfigMap says. The empty default authenticates no one.

    ``requestheader_ca`` empty means kube-apiserver has no ``--requestheader-client-ca-file``: no
    front proxy is trusted at all. ``extra_headers_prefixes`` are lower-cased, as they are matched.
    """

    client_ca: tuple[x509.Certificate, ...] = ()
    requestheader_ca: tuple[x509.Certificate, ...] = ()
    allowed_names: frozenset[str] = frozenset()
    username_headers: tuple[str, ...] = ()
    uid_headers: tuple[str, ...] = ()
    group_headers: tuple[str, ...] = ()
    extra_headers_prefixes: tuple[str, ...] = ()

    def client_ca_bundle(self) -> bytes:
        """The PEM of every CA a client certificate may chain to, for the TLS handshake: the
        union of both bundles (which CA issued a certificate is decided per request)."""
        unique = dict.fromkeys((*self.client_ca, *self.requestheader_ca))
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in unique)


def parse_configmap(configmap: Mapping[str, Any]) -> AuthenticationConfig:
    """Parse the ConfigMap the way kube-apiserver's delegating authentication reads it.

    Missing or empty keys mean "not configured"; the list keys hold JSON arrays of strings (``null``
    and ``[]`` are empty); header names are trimmed and must not be empty. Raises
    :class:`ConfigError`, naming the key, on anything else.
    """
    data = configmap.get("data") or {}
    return AuthenticationConfig(
        client_ca=_certificates(data, "client-ca-file"),
        requestheader_ca=_certificates(data, "requestheader-client-ca-file"),
        allowed_names=frozenset(_strings(data, "requestheader-allowed-names")),
        username_headers=_headers(data, "requestheader-username-headers"),
        uid_headers=_headers(data, "requestheader-uid-headers"),
        group_headers=_headers(data, "requestheader-group-headers"),
        extra_headers_prefixes=tuple(p.lower() for p in _headers(data, "requestheader-extra-headers-prefix")),
    )


def _certificates(data: Mapping[str, Any], key: str) -> tuple[x509.Certificate, ...]:
    pem = data.get(key)
    if not pem:
        return ()
    try:
        return tuple(x509.load_pem_x509_certificates(str(pem).encode()))
    except ValueError as error:
        raise ConfigError(f"{key}: not a PEM certificate bundle ({error})") from None


def _strings(data: Mapping[str, Any], key: str) -> list[str]:
    text = data.get(key)
    if not text:
        return []
    try:
        values = json.loads(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: not a JSON array of strings: {text!r}") from None
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{key}: not a JSON array of strings: {text!r}")
    return values


def _headers(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in _strings(data, key))
    if "" in names:
        raise ConfigError(f"{key}: empty header name in {data[key]!r}")
    return names


class AuthenticationConfigWatcher:
    """Keeps :attr:`config` equal to the ConfigMap and the TLS client CAs equal to its bundles.

    :meth:`run` lists and watches the one ConfigMap until cancelled, relisting on 410 and retrying
    errors with backoff; a missing ConfigMap or a permission error is logged once, clearly, while
    it lasts. :attr:`loaded` (readiness) turns true at the first good ConfigMap and stays true.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        tls: ServerTLS | None = None,
        namespace: str = CONFIGMAP_NAMESPACE,
        name: str = CONFIGMAP_NAME,
        settings: AuthSettings = AuthSettings(),
    ) -> None:
        self.client = client
        self.settings = settings
        self.tls = tls
        self.namespace = namespace
        self.name = name
        #: The configuration in force: read on every request, replaced (never mutated) on change.
        self.config = AuthenticationConfig()
        self._loaded = asyncio.Event()
        self._problem: str | None = None
        self._path = f"/api/v1/namespaces/{namespace}/configmaps"
        self._selector = f"metadata.name={name}"

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    async def wait_loaded(self) -> None:
        await self._loaded.wait()

    async def run(self) -> None:
        delay = self.settings.config_first_backoff
        while True:
            try:
                resource_version = await self._list()
                delay = self.settings.config_first_backoff
                await self._watch(resource_version)
                continue  # 410 Gone: the watch is too far behind, relist now
            except ApiError as error:
                if error.code == 410:
                    continue
                self._report(self._describe(error))
            except Exception as error:  # noqa: BLE001 - connection errors, garbage: retry, never die
                self._report(f"cannot read ConfigMap {self.namespace}/{self.name}: {error!r}")
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.settings.config_max_backoff)

    async def _list(self) -> str:
        answer = await self.client.json("GET", self._path, params={"fieldSelector": self._selector})
        items = answer.get("items") or []
        if items:
            self._apply(items[0])
        else:
            self._report(
                f"ConfigMap {self.namespace}/{self.name} not found: kube-apiserver writes it at start-up "
                "(with --requestheader-client-ca-file for front-proxy requests); waiting for it"
            )
        return str(answer.get("metadata", {}).get("resourceVersion", ""))

    async def _watch(self, resource_version: str) -> None:
        """Follow the ConfigMap from ``resource_version``; return when a relist is needed."""
        while True:
            params = {
                "fieldSelector": self._selector,
                "resourceVersion": resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self.settings.config_watch_timeout),
            }
            async for event in self.client.watch(self._path, params, timeout=self.settings.config_watch_timeout + 30):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return
                    raise ApiError(int(obj.get("code") or 500), obj)
                resource_version = obj.get("metadata", {}).get("resourceVersion") or resource_version
                if kind in ("ADDED", "MODIFIED"):
                    self._apply(obj)
                elif kind == "DELETED":
                    self._report(f"ConfigMap {self.namespace}/{self.name} was deleted; "
                                 "keeping the last known configuration until kube-apiserver recreates it")

    def _apply(self, configmap: Mapping[str, Any]) -> None:
        try:
            config = parse_configmap(configmap)
        except ConfigError as error:
            self._report(f"ConfigMap {self.namespace}/{self.name} is invalid, keeping the previous "
                         f"configuration: {error}")
            return
        self._recovered()
        if config == self.config and self.loaded:
            return
        previous, self.config = self.config, config
        if self.tls is not None and (config.client_ca_bundle() != previous.client_ca_bundle() or not self.loaded):
            self.tls.set_client_ca(config.client_ca_bundle())
        log.info(
            "authentication configuration updated" if self.loaded else "authentication configuration loaded",
            extra={
                "client_cas": len(config.client_ca),
                "requestheader_cas": len(config.requestheader_ca),
                "allowed_names": ",".join(sorted(config.allowed_names)) or "<any>",
                "username_headers": ",".join(config.username_headers),
            },
        )
        self._loaded.set()

    def _describe(self, error: ApiError) -> str:
        where = f"ConfigMap {self.namespace}/{self.name}"
        if error.code == 403:
            return (f"permission denied reading {where} ({error.message}): bind the Role "
                    f"extension-apiserver-authentication-reader in {self.namespace} to this server's identity")
        return f"cannot read {where}: {error}"

    def _report(self, problem: str) -> None:
        """Log a problem once while it lasts, not on every retry."""
        if problem != self._problem:
            log.warning(problem)
            self._problem = problem

    def _recovered(self) -> None:
        if self._problem is not None:
            log.info("authentication ConfigMap readable again", extra={"previous_problem": self._problem})
            self._problem = None
