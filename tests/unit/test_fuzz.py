"""Property-based fuzzing: whatever shape an AdmissionReview, a ServiceExport or a query takes, the
answer is never a 5xx (and never a crash of the view engine).

Each example goes through the real code: the webhooks over HTTP with the live facts of three
members (so that conflict checks run), the view engine over members holding the fuzzed exports, and
the resource handlers behind the request info and the limits.
"""

from __future__ import annotations

import os

import asyncio
import json
import contextlib
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcs_apiserver.admission_facts import LiveFacts
from mcs_apiserver.api.app import build_app
from mcs_apiserver.api.limits import Limiter, Limits, runner_options
from mcs_apiserver.api.resources import PREFIX, Served
from mcs_apiserver.api.store import Store, Versioner
from mcs_apiserver.metrics import Metrics
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.contract import EXPORTED_AT_ANNOTATION
from mcs_apiserver.views.testing import InMemoryMember, member, port, service
from webhooks import PATHS, add_routes

# New examples on every developer run; in CI (CI=true) the same examples every run, so that a red CI
# is a regression of the code, never a new random find (run the tests locally to keep exploring).
FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KEY = ("demo", "web")

# --- strategies -------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def odd(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the well-formed value, sometimes anything at all in its place."""
    return st.one_of(strategy, strategy, strategy, anything)


def envelope(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object whose fields are all there, each well-formed or odd: the odd parts then reach the
    code behind the envelope checks instead of stopping at them."""
    return st.fixed_dictionaries({k: odd(v) for k, v in fields.items()})


def maybe_keys(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with any subset of ``fields``, each well-formed or odd."""
    return st.fixed_dictionaries({}, optional={k: odd(v) for k, v in fields.items()})


names = st.sampled_from(["web", "db", "cluster.clusterset.k8s.io", "id.k8s.io", "clusterset.k8s.io", "", "Web!"])
times = st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456Z", "yesterday", ""])
metadata = maybe_keys(name=names, namespace=st.sampled_from(["demo", "", "other"]), creationTimestamp=times,
                      annotations=st.dictionaries(st.sampled_from([EXPORTED_AT_ANNOTATION, "a"]), odd(times)),
                      labels=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
                      resourceVersion=st.text(max_size=5))
service_exports = maybe_keys(
    apiVersion=st.sampled_from(["multicluster.x-k8s.io/v1alpha1", "multicluster.x-k8s.io/v1beta1"]),
    kind=st.just("ServiceExport"), metadata=metadata,
    spec=maybe_keys(exportedLabels=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
                    exportedAnnotations=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)),
    status=maybe_keys(conditions=st.lists(maybe_keys(type=st.text(max_size=5), status=st.text(max_size=5)))),
)
cluster_properties = maybe_keys(apiVersion=st.just("about.k8s.io/v1beta1"), kind=st.just("ClusterProperty"),
                                metadata=metadata, spec=maybe_keys(value=st.sampled_from(["m1", "set-1", "", "UP"])))
kinds = st.sampled_from([("multicluster.x-k8s.io", "v1beta1", "ServiceExport"),
                         ("multicluster.x-k8s.io", "v1alpha1", "ServiceExport"),
                         ("about.k8s.io", "v1alpha1", "ClusterProperty"), ("", "v1", "Pod")])
reviews = envelope(
    apiVersion=st.just("admission.k8s.io/v1"), kind=st.just("AdmissionReview"),
    request=envelope(
        uid=st.just("0d1b4a3e"), kind=kinds.map(lambda gvk: dict(zip(("group", "version", "kind"), gvk))),
        operation=st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"]), name=names,
        namespace=st.sampled_from(["demo", ""]), subResource=st.sampled_from(["", "status"]),
        object=service_exports | cluster_properties, oldObject=service_exports | cluster_properties,
        dryRun=st.booleans(), userInfo=maybe_keys(username=st.text(max_size=5)),
    ),
)


# --- the world the webhooks and views see ------------------------------------------------------------


class SyncedMember(InMemoryMember):
    """An in-memory member whose every resource has been listed (what ``LiveFacts`` asks)."""

    def resource_synced(self, resource: str) -> bool:
        return True


def members(local_export: Any = None) -> dict[str, InMemoryMember]:
    world: dict[str, InMemoryMember] = {}
    for index, name in enumerate(("m1", "m2", "m3")):
        m = member(name, namespaces=("demo",))
        synced = SyncedMember(name=m.name, status=m.status, cluster_properties=m.cluster_properties,
                              namespaces=m.namespaces)
        synced.export(KEY, service(KEY, ports=[port(80 + index)]), exported_at=f"2026-01-01T00:00:0{index}Z")
        world[name] = synced
    if local_export is not None:
        world["m1"].exports[KEY] = local_export
    return world


@contextlib.contextmanager
def serving(app: web.Application) -> Iterator[Callable[[Callable[[TestClient], Coroutine[Any, Any, None]]], None]]:
    """Serve ``app`` on a loop of its own; yields ``run(request)``, which runs one request on it."""
    loop = asyncio.new_event_loop()
    client = TestClient(TestServer(app, loop=loop, **runner_options()), loop=loop)
    loop.run_until_complete(client.start_server())
    try:
        yield lambda request: loop.run_until_complete(request(client))
    finally:
        loop.run_until_complete(client.close())
        loop.close()


def webhook_app(world: dict[str, InMemoryMember]) -> web.Application:
    engine = ViewEngine("m1")
    engine.update(world, membership_changed=True)
    app = web.Application()
    add_routes(app, LiveFacts(world, "m1", engine), "deny")  # type: ignore[arg-type]
    return app


# --- the properties --------------------------------------------------------------------------------


def test_no_admission_review_of_any_shape_gets_a_5xx() -> None:
    app = webhook_app(members())
    failures: list[str] = []

    with serving(app) as run:
        @settings(FUZZ, max_examples=500)
        @given(review=st.one_of(reviews, reviews, reviews, anything), path=st.sampled_from(PATHS))
        def one(review: Any, path: str) -> None:
            async def post(client: TestClient) -> None:
                response = await client.post(path, data=json.dumps(review),
                                             headers={"Content-Type": "application/json"})
                body = await response.read()
                if response.status >= 500:
                    failures.append(f"{path} {response.status} {body[:300]!r} for {review!r}")
                elif response.status == 200:
                    assert orjson.loads(body)["response"]["uid"] == review["request"]["uid"]

            run(post)

        one()
    assert not failures, failures[:3]


@FUZZ
@given(export=service_exports)
def test_the_view_engine_and_the_conflict_check_survive_a_service_export_of_any_shape(export: Any) -> None:
    world = members(local_export=export)
    engine = ViewEngine("m1")
    engine.update(world, membership_changed=True)  # no exception: a bad export is skipped or read with safe defaults
    facts = LiveFacts(world, "m1", engine)  # type: ignore[arg-type]
    facts.export_conflicts(*KEY, export, world["m1"].services[KEY])


queries = st.dictionaries(
    st.sampled_from(["watch", "limit", "continue", "labelSelector", "fieldSelector", "resourceVersion",
                     "resourceVersionMatch", "timeoutSeconds", "allowWatchBookmarks", "sendInitialEvents",
                     "includeObject"]),
    st.text(max_size=12) | st.sampled_from(["1", "-1", "0", "true", "t", "NotOlderThan", "Exact", "==",
                                            "metadata.name=web", "99999999999999999999", "Object"]),
    max_size=5)
paths = st.sampled_from([f"{PREFIX}/serviceimports", f"{PREFIX}/namespaces/demo/serviceimports",
                         f"{PREFIX}/namespaces/demo/serviceimports/web", f"{PREFIX}/clustersets",
                         f"{PREFIX}/clustersets/set-1", f"{PREFIX}/watch/serviceimports"])


def test_no_query_string_gets_a_5xx() -> None:
    versioner = Versioner(1000)
    imports, sets = Store("serviceimports", versioner), Store("clustersets", versioner)
    engine = ViewEngine("m1")
    engine.update(members(), membership_changed=True)
    imports.apply(dict(engine.imports))
    if engine.clusterset is not None:
        sets.apply({("", engine.clusterset["metadata"]["name"]): engine.clusterset})
    app = build_app(Served({"serviceimports": imports, "clustersets": sets}), checks=[], metrics=Metrics(),
                    limiter=Limiter(Limits()))
    failures: list[str] = []

    with serving(app) as run:
        @FUZZ
        @given(path=paths, query=queries, accept=st.sampled_from(
            [None, "application/json;as=Table;v=v1;g=meta.k8s.io", "application/yaml", "*/*"]))
        def one(path: str, query: dict[str, str], accept: str | None) -> None:
            async def get(client: TestClient) -> None:
                headers = {"Accept": accept} if accept else {}
                response = await client.get(path, params=query, headers=headers)
                body = await response.read() if response.status >= 500 else b""
                # The one 5xx kube-apiserver itself answers to a query: a resourceVersion newer than
                # anything seen is 504 Timeout, cause ResourceVersionTooLarge (clients relist).
                too_new = response.status == 504 and b'"reason":"ResourceVersionTooLarge"' in body
                if response.status >= 500 and not too_new:
                    failures.append(f"{path} {query} {response.status} {body[:300]!r}")
                response.close()  # a watch: the server notices at once and ends it

            run(get)

        one()
    assert not failures, failures[:3]
