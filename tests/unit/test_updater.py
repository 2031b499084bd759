"""The view updater: member changes in, one engine run per loop turn, the delta versioned in the stores."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from mcs_apiserver.api.store import Store, Versioner
from mcs_apiserver.updater import ViewUpdater
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.contract import CLUSTERSET_PROPERTY
from mcs_apiserver.views.testing import InMemoryMember, member, port, service

FIXED = datetime(2026, 1, 2, tzinfo=UTC)
WEB = ("shop", "web")
DB = ("shop", "db")


class CountingEngine(ViewEngine):
    """A real engine that records each run's arguments (and can be told to fail)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[set, set, bool]] = []
        self.fail_next = False
        self.fail_after_update = False

    def update(self, members, changed_keys=frozenset(), changed_namespaces=frozenset(), membership_changed=False):
        self.calls.append((set(changed_keys), set(changed_namespaces), membership_changed))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("engine bug")
        delta = super().update(members, changed_keys, changed_namespaces, membership_changed)
        if self.fail_after_update:
            # The worst case: the engine moved its own state on, then failed; the delta is lost.
            self.fail_after_update = False
            raise RuntimeError("engine bug after the work was done")
        return delta


class Pipeline:
    def __init__(self) -> None:
        self.members: dict[str, InMemoryMember] = {
            "a": member("a", namespaces=("default", "shop")),
            "b": member("b", namespaces=("default", "shop")),
        }
        self.engine = CountingEngine("a", now=lambda: FIXED)
        self.versioner = Versioner(1)
        self.imports = Store("serviceimports", self.versioner)
        self.clustersets = Store("clustersets", self.versioner)
        self.runs: list[tuple[float, int]] = []
        self.updater = ViewUpdater(self.engine, self.members, self.imports, self.clustersets,
                                   on_run=lambda seconds, changed: self.runs.append((seconds, changed)))

    def export(self, name: str, key: tuple[str, str], ready: int = 1, *ports: int) -> None:
        self.members[name].export(key, service(key, ports=[port(p, f"p{p}") for p in (ports or (80,))]), ready=ready)
        self.updater.keys_changed(name, [key])

    def served_imports(self) -> dict[tuple[str, str], dict]:
        return {k: s.obj for k, s in self.imports.objects.items()}

    def assert_stores_match_the_engine(self) -> None:
        assert set(self.imports.objects) == set(self.engine.imports)
        for key, obj in self.engine.imports.items():
            stored = dict(self.imports.get(key).obj)  # type: ignore[union-attr]
            metadata = dict(stored["metadata"])
            metadata.pop("resourceVersion")
            assert {**stored, "metadata": metadata} == obj
        wanted = self.engine.clusterset
        assert [s.obj["metadata"]["name"] for s in self.clustersets.objects.values()] == (
            [wanted["metadata"]["name"]] if wanted else [])


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline()


async def turn() -> None:
    """Let the event loop run what was scheduled with call_soon."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_many_changes_reported_in_one_loop_turn_make_one_engine_run(pipeline: Pipeline) -> None:
    for i in range(50):
        pipeline.export("a" if i % 2 else "b", ("shop", f"svc-{i}"))
    pipeline.updater.namespaces_changed("a", ["shop"])
    pipeline.updater.membership_changed("b")
    assert pipeline.engine.calls == []  # nothing runs before the loop turns
    await turn()
    assert len(pipeline.engine.calls) == 1
    keys, namespaces, _ = pipeline.engine.calls[0]
    assert len(keys) == 50 and namespaces == {"shop"}
    assert pipeline.updater.runs == 1
    assert len(pipeline.imports.objects) == 50
    assert pipeline.runs[0][1] == 50


async def test_the_engines_delta_lands_in_the_stores_with_new_versions(pipeline: Pipeline) -> None:
    pipeline.updater.membership_changed("a")
    await turn()
    (clusterset,) = pipeline.clustersets.objects.values()
    assert clusterset.obj["metadata"]["name"] == "set-1"
    pipeline.export("a", WEB, 1, 80)
    pipeline.export("b", WEB, 2, 80)
    await turn()
    web = pipeline.imports.get(WEB)
    assert web is not None
    assert web.obj["kind"] == "ServiceImport"
    assert [c["cluster"] for c in web.obj["status"]["clusters"]] == ["a", "b"]
    assert int(web.obj["metadata"]["resourceVersion"]) == web.rv
    assert web.obj is not pipeline.engine.imports[WEB]  # the engine's object is not stamped in place
    assert "resourceVersion" not in pipeline.engine.imports[WEB]["metadata"]
    pipeline.assert_stores_match_the_engine()


async def test_changes_in_separate_loop_turns_make_separate_runs(pipeline: Pipeline) -> None:
    pipeline.export("a", WEB)
    await turn()
    pipeline.export("a", DB)
    await turn()
    assert len(pipeline.engine.calls) == 2
    assert pipeline.engine.calls[1][0] == {DB}


async def test_an_unexport_deletes_the_import_with_a_deleted_event(pipeline: Pipeline) -> None:
    pipeline.export("a", WEB)
    await turn()
    watcher, _ = pipeline.imports.watch(None, lambda _: True, since=pipeline.versioner.current)
    pipeline.members["a"].unexport(WEB)
    pipeline.updater.keys_changed("a", [WEB])
    await turn()
    assert pipeline.imports.get(WEB) is None
    (event,), _ = watcher.take()
    assert (event.type, event.stored.key) == ("DELETED", WEB)


async def test_a_namespace_appearing_in_the_local_cluster_serves_its_imports(pipeline: Pipeline) -> None:
    pipeline.export("b", ("blue", "web"))
    await turn()
    assert pipeline.imports.get(("blue", "web")) is None  # namespace sameness: not in the local cluster
    pipeline.members["a"].add_namespace("blue")
    pipeline.updater.namespaces_changed("a", ["blue"])
    await turn()
    assert pipeline.imports.get(("blue", "web")) is not None


async def test_namespaces_of_other_members_are_not_passed_to_the_engine(pipeline: Pipeline) -> None:
    pipeline.updater.namespaces_changed("b", ["green"])
    await turn()
    assert pipeline.engine.calls[-1][1] == set()


async def test_a_renamed_clusterset_replaces_the_old_one(pipeline: Pipeline) -> None:
    pipeline.updater.membership_changed("a")
    await turn()
    for name in ("a", "b"):
        pipeline.members[name].set_property(CLUSTERSET_PROPERTY, "set-2")
        pipeline.updater.membership_changed(name)
    await turn()
    assert list(pipeline.clustersets.objects) == [("", "set-2")]


async def test_leaving_the_clusterset_removes_it_and_every_import(pipeline: Pipeline) -> None:
    pipeline.export("a", WEB)
    await turn()
    assert pipeline.clustersets.objects and pipeline.imports.objects
    del pipeline.members["a"].cluster_properties[CLUSTERSET_PROPERTY]
    pipeline.updater.membership_changed("a")
    await turn()
    assert pipeline.clustersets.objects == {}
    assert pipeline.imports.objects == {}


async def test_a_run_that_changes_nothing_hands_out_no_version(pipeline: Pipeline) -> None:
    pipeline.export("a", WEB)
    await turn()
    version = pipeline.versioner.current
    pipeline.updater.keys_changed("a", [WEB])
    await turn()
    assert pipeline.versioner.current == version
    assert pipeline.runs[-1][1] == 0


async def test_listeners_hear_about_every_run_with_the_keys_it_touched(pipeline: Pipeline) -> None:
    heard: list[tuple[int, set, bool]] = []
    pipeline.updater.listeners.append(
        lambda keys, membership: heard.append((pipeline.updater.runs, set(keys), membership)))
    pipeline.export("a", WEB)
    await turn()
    pipeline.export("a", DB)
    await turn()
    assert [(runs, keys) for runs, keys, _ in heard] == [(1, {WEB}), (2, {DB})]


async def test_changes_reported_during_a_failed_run_are_not_lost(pipeline: Pipeline) -> None:
    pipeline.export("a", WEB)
    await turn()
    pipeline.engine.fail_next = True
    pipeline.export("b", DB)
    await turn()
    assert pipeline.imports.get(DB) is None  # the last good views stay served
    assert pipeline.updater.runs == 1
    pipeline.export("a", ("shop", "other"))
    await turn()
    assert pipeline.imports.get(DB) is not None
    assert DB in pipeline.engine.calls[-1][0]
    pipeline.assert_stores_match_the_engine()


async def test_a_run_that_fails_after_the_engine_moved_on_is_repaired_by_the_next_one(pipeline: Pipeline) -> None:
    pipeline.export("a", WEB)
    pipeline.export("a", DB)
    await turn()
    pipeline.engine.fail_after_update = True
    pipeline.members["a"].unexport(DB)
    pipeline.updater.keys_changed("a", [DB])
    pipeline.export("b", WEB, 3, 80, 443)
    await turn()
    assert pipeline.imports.get(DB) is not None  # the lost delta: the store still has it
    pipeline.export("a", ("shop", "unrelated"))
    await turn()
    assert pipeline.engine.calls[-1][2] is True  # a full recompute
    assert pipeline.imports.get(DB) is None
    assert [p["port"] for p in pipeline.imports.get(WEB).obj["spec"]["ports"]] == [80, 443]  # type: ignore[union-attr]
    pipeline.assert_stores_match_the_engine()
    version = pipeline.versioner.current
    pipeline.updater.keys_changed("a", [WEB])
    await turn()
    assert pipeline.versioner.current == version  # back to deltas, and nothing spurious
    assert pipeline.engine.calls[-1][2] is False


def test_without_a_running_loop_the_updater_is_driven_by_hand(pipeline: Pipeline) -> None:
    pipeline.members["a"].export(WEB, service(WEB, ports=[port(80, "http")]), ready=1)
    pipeline.updater.keys_changed("a", [WEB])
    assert pipeline.engine.calls == []
    pipeline.updater.run()
    assert pipeline.imports.get(WEB) is not None
    pipeline.assert_stores_match_the_engine()
