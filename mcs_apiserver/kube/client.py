"""A thin raw-JSON client for one Kubernetes API server.

kubernetes-asyncio does the hard part, turning a kubeconfig context (certificates, tokens, exec
plugins) or the in-cluster service account into a ``Configuration``. The wire is ours: one aiohttp
session, raw bytes in and out, parsed with orjson. The generated models are far too slow for
thousands of objects, and everything this project reads is plain JSON anyway.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import kube_config, load_incluster_config
from kubernetes_asyncio.config.kube_config import KubeConfigLoader

#: Watch events are single JSON lines; aiohttp's default 128 KiB line limit is too small for big
#: objects (kubernetes-asyncio raised it to 2 MiB for the same reason). Objects in etcd max 1.5 MiB.
MAX_LINE_BYTES = 4 * 1024 * 1024


class ApiError(Exception):
    """A non-2xx answer from a Kubernetes API server, with its ``Status`` when there is one."""

    def __init__(self, code: int, status: Mapping[str, Any] | None, text: str = "") -> None:
        self.code = code
        self.status: Mapping[str, Any] = status or {}
        self.reason: str = str(self.status.get("reason", ""))
        message = str(self.status.get("message") or text or f"HTTP {code}")
        super().__init__(f"{code} {self.reason or 'Error'}: {message}")
        self.message = message


@dataclass(frozen=True, slots=True)
class Connection:
    """Where and how to reach one API server: the output of kubeconfig loading."""

    host: str
    ssl_context: ssl.SSLContext | bool
    config: Configuration
    tls_server_name: str | None = None


async def connection_from_kubeconfig(path: str, context: str | None = None) -> Connection:
    """Load one context of a kubeconfig file (the current context when ``context`` is None)."""
    config = type.__call__(Configuration)
    await kube_config.load_kube_config(
        config_file=path, context=context, client_configuration=config, persist_config=False
    )
    return _connection(config)


def connection_in_cluster() -> Connection:
    """The service account of the pod this process runs in; tokens are re-read as they rotate."""
    config = type.__call__(Configuration)
    load_incluster_config(client_configuration=config)
    return _connection(config)


def kubeconfig_contexts(path: str) -> tuple[list[str], str | None]:
    """The context names of a kubeconfig file, and its current context."""
    loader: KubeConfigLoader = kube_config._get_kube_config_loader_for_yaml_file(path)
    names = [c["name"] for c in loader.list_contexts()]
    current = loader.current_context["name"] if loader.current_context else None
    return names, current


def _connection(config: Configuration) -> Connection:
    if not config.verify_ssl:
        context: ssl.SSLContext | bool = False
    else:
        context = ssl.create_default_context(cafile=config.ssl_ca_cert)
        if config.cert_file:
            context.load_cert_chain(config.cert_file, keyfile=config.key_file)
        if getattr(config, "disable_strict_ssl_verification", False):
            context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return Connection(
        host=config.host.rstrip("/"),
        ssl_context=context,
        config=config,
        tls_server_name=getattr(config, "tls_server_name", None),
    )


class KubeClient:
    """Raw JSON requests and watch streams against one API server."""

    def __init__(self, connection: Connection, *, user_agent: str = "mcs-apiserver") -> None:
        self.connection = connection
        self.host = connection.host
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.connection.ssl_context, limit=64),
                headers={"User-Agent": self._user_agent},
                read_bufsize=2**18,
                max_line_size=MAX_LINE_BYTES,
                max_field_size=MAX_LINE_BYTES,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = await self.connection.config.get_api_key_with_prefix("BearerToken")
        if token is None:
            token = await self.connection.config.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers

    def _request_kwargs(self) -> dict[str, Any]:
        if self.connection.tls_server_name:
            return {"server_hostname": self.connection.tls_server_name}
        return {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """One request; returns (status, body, headers) whatever the status."""
        hdrs = await self._headers(headers)
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            hdrs["Content-Type"] = content_type
        async with self.session.request(
            method,
            self.host + path,
            params=params,
            data=data,
            headers=hdrs,
            timeout=aiohttp.ClientTimeout(total=timeout),
            **self._request_kwargs(),
        ) as resp:
            payload = await resp.read()
            return resp.status, payload, resp.headers

    async def json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """One request whose 2xx answer is JSON; anything else raises ``ApiError``."""
        status, payload, _ = await self.request(
            method, path, params=params, body=body, content_type=content_type,
            headers=headers, timeout=timeout,
        )
        if status >= 300:
            raise api_error(status, payload)
        return orjson.loads(payload) if payload else None

    async def get(self, path: str, params: Mapping[str, str] | None = None, timeout: float = 30.0) -> Any:
        return await self.json("GET", path, params=params, timeout=timeout)

    async def watch(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream watch events, one decoded JSON object per line, until the server ends it.

        Raises ``ApiError`` when the server refuses the watch outright; an ERROR event inside the
        stream is yielded as it is, for the caller to act on (e.g. relist on 410).
        """
        hdrs = await self._headers(None)
        query = dict(params)
        query["watch"] = "1"
        client_timeout = aiohttp.ClientTimeout(
            total=timeout, sock_connect=connect_timeout, sock_read=idle_timeout)
        async with self.session.get(
            self.host + path, params=query, headers=hdrs, timeout=client_timeout,
            **self._request_kwargs(),
        ) as resp:
            if resp.status >= 300:
                raise api_error(resp.status, await resp.read())
            while True:
                line = await resp.content.readline()
                if not line:
                    return
                line = line.strip()
                if line:
                    yield orjson.loads(line)


def api_error(status: int, payload: bytes) -> ApiError:
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return ApiError(status, None, payload[:500].decode("utf-8", "replace"))
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        return ApiError(status, parsed)
    return ApiError(status, None, payload[:500].decode("utf-8", "replace"))


async def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll an async predicate until it returns something truthy; TimeoutError names ``what``."""
    deadline = asyncio.get_running_loop().time() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = await predicate()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - the last error is reported on timeout
            last_error = error
        if asyncio.get_running_loop().time() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        await asyncio.sleep(interval)


def connection_from_files(host: str, *, ca_file: str, cert_file: str, key_file: str) -> Connection:
    """A connection authenticated by a client certificate, without a kubeconfig (bootstrap use)."""
    config = type.__call__(Configuration)
    config.host = host
    config.ssl_ca_cert = ca_file
    config.cert_file = cert_file
    config.key_file = key_file
    return _connection(config)
