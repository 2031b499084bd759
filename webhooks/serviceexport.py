"""Admission rules for ServiceExport (``multicluster.x-k8s.io`` v1alpha1/v1beta1, namespaced).

Mutating: the export age (how views use it: mcs_apiserver/views/imports.py)
    * CREATE: stamp ``views.multicluster.x-k8s.io/exported-at`` = now, RFC 3339 with microseconds,
      UTC (``2026-11-23T18:55:00.123456Z``). Idempotent under reinvocation
      (``reinvocationPolicy: IfNeeded``): a well-formed value no older than two minutes and no more
      than 30 seconds ahead is taken to be our own stamp from an earlier call of this same request
      (maybe by another replica) and kept. Any other value the client sent is replaced, with a
      warning: a client must not be able to back-date its export to win the "oldest export" rule.
    * UPDATE: the old value is kept; it is put back silently when the client dropped it (``kubectl
      replace`` of a manifest without it) and with a warning when the client changed it. An export
      created without the annotation (before the webhook was installed, or while it was down)
      stays without it (the view then uses ``creationTimestamp``): a value added later is removed,
      with a warning.

Validating
    * CREATE: the name must be a valid Service name (RFC 1035 label) — 422 ``Invalid``; only on
      CREATE: an existing export must stay updatable (finalizers, labels) whatever it is. The local
      Service may be missing (the export may come first). Exporting an ``ExternalName`` Service is
      admitted with a warning saying why it will not be imported: clients (the upstream conformance
      suite among them) create the export and then read its status, where the instance writes
      ``Valid=False/InvalidServiceType`` (KEP-1645); a denial would leave them nothing to read.
    * CREATE and UPDATE: conflicts with the other clusters' exports (``facts.export_conflicts``)
      come back as warnings ("<Reason>: <message>", kubectl prints them). With the ``deny`` policy
      (``--export-conflict-policy=deny``) they deny instead (403), except that an UPDATE is denied
      only for conflicts the old object did not already have, and never when the object is being
      deleted: an update must not make things worse, but must always be able to finish a deletion.

Not synced (``facts.NotSynced`` from the Service or conflict lookups): with ``warn`` the export is
allowed with a warning saying what was not checked; with ``deny`` it is denied with 503 (retry),
because strict mode promises that no unchecked export gets in. The status conditions (``Valid``,
``Conflict``) that the instance writes later tell the truth either way.

``dryRun`` changes nothing: same answer, same patch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal, cast

import jsonpatch
from jsonpointer import escape as _escape_pointer

from mcs_apiserver.kube.types import ServiceExport

from mcs_apiserver.kube.names import is_dns1035_label, suggest_dns1123_label
from mcs_apiserver.kube.times import format_micro_time, parse_micro_time, utc_now
from mcs_apiserver.contract import EXPORTED_AT_ANNOTATION
from .facts import AdmissionFacts, NotSynced
from .review import AdmissionRequest, Decision, allow, deny, invalid, unavailable

__all__ = [
    "CONFLICT_POLICIES",
    "GROUP",
    "KIND",
    "VERSIONS",
    "ConflictPolicy",
    "mutate_service_export",
    "validate_service_export",
]

GROUP: Final = "multicluster.x-k8s.io"
KIND: Final = "ServiceExport"
VERSIONS: Final = frozenset({"v1alpha1", "v1beta1"})

ConflictPolicy = Literal["warn", "deny"]
CONFLICT_POLICIES: Final = ("warn", "deny")

#: A stamp this close to "now" is taken as ours from an earlier invocation of the same request.
REINVOCATION_PAST: Final = timedelta(minutes=2)
REINVOCATION_FUTURE: Final = timedelta(seconds=30)

_ANNOTATION_PATH: Final = "/metadata/annotations/" + _escape_pointer(EXPORTED_AT_ANNOTATION)

def _annotations(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    metadata = (obj or {}).get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return annotations if isinstance(annotations, dict) else None


def _set_annotation(obj: dict[str, Any], value: str) -> list[dict[str, Any]]:
    """JSON Patch setting the annotation, whatever exists of ``metadata.annotations``.

    ``add`` on an existing member replaces it (RFC 6902 §4.1), so it also covers ``null``.
    """
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return [{"op": "add", "path": "/metadata", "value": {"annotations": {EXPORTED_AT_ANNOTATION: value}}}]
    if not isinstance(metadata.get("annotations"), dict):
        return [{"op": "add", "path": "/metadata/annotations", "value": {EXPORTED_AT_ANNOTATION: value}}]
    return [{"op": "add", "path": _ANNOTATION_PATH, "value": value}]


# --- mutating ---------------------------------------------------------------------------------------------


def mutate_service_export(
    request: AdmissionRequest, facts: AdmissionFacts | None = None, *, now: Callable[[], datetime] = utc_now
) -> Decision:
    """Stamp ``exported-at`` on CREATE, keep it on UPDATE. Needs no facts."""
    if request.sub_resource or request.object is None:
        return allow()
    annotations = _annotations(request.object) or {}
    if request.operation == "CREATE":
        moment = now()
        current = annotations.get(EXPORTED_AT_ANNOTATION)
        stamped = parse_micro_time(current)
        if stamped is not None and moment - REINVOCATION_PAST <= stamped <= moment + REINVOCATION_FUTURE:
            return allow()
        stamp = format_micro_time(moment)
        warnings = []
        if EXPORTED_AT_ANNOTATION in annotations:
            warnings.append(
                f"annotation {EXPORTED_AT_ANNOTATION} is set by mcs-apiserver when a ServiceExport is created; "
                f"{_short(current)} was replaced by {stamp!r}"
            )
        return allow(patch=_set_annotation(request.object, stamp), warnings=warnings)
    if request.operation == "UPDATE":
        old_annotations = _annotations(request.old_object) or {}
        if EXPORTED_AT_ANNOTATION in old_annotations:
            old = old_annotations[EXPORTED_AT_ANNOTATION]
            if annotations.get(EXPORTED_AT_ANNOTATION) == old and EXPORTED_AT_ANNOTATION in annotations:
                return allow()
            warnings = []
            if EXPORTED_AT_ANNOTATION in annotations:
                warnings.append(
                    f"annotation {EXPORTED_AT_ANNOTATION} records when this ServiceExport was created and cannot "
                    f"be changed; kept {_short(old)}"
                )
            return allow(patch=_set_annotation(request.object, old), warnings=warnings)
        if EXPORTED_AT_ANNOTATION in annotations:
            warning = (
                f"annotation {EXPORTED_AT_ANNOTATION} is set only when a ServiceExport is created; "
                "this export has none (its creationTimestamp counts as its age), so it was removed"
            )
            return allow(patch=[{"op": "remove", "path": _ANNOTATION_PATH}], warnings=[warning])
    return allow()


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- validating -------------------------------------------------------------------------------------------


def validate_service_export(
    request: AdmissionRequest, facts: AdmissionFacts, *, policy: ConflictPolicy = "warn"
) -> Decision:
    """The validating webhook's decision for a ServiceExport request."""
    if request.operation not in ("CREATE", "UPDATE") or request.sub_resource or request.object is None:
        return allow()
    obj = request.object
    metadata = obj.get("metadata") or {}
    name = metadata.get("name") or request.name
    namespace = request.namespace or metadata.get("namespace") or ""
    if not isinstance(name, str) or not isinstance(namespace, str):
        return invalid("metadata.name and metadata.namespace must be strings", field="metadata")
    if request.operation == "CREATE":
        if not name:
            return invalid("a ServiceExport must be named after the Service it exports", field="metadata.name")
        if not is_dns1035_label(name):
            return invalid(_bad_name(name), field="metadata.name")
    strict = policy == "deny"
    try:
        service = facts.local_service(namespace, name)
    except NotSynced as exc:
        return _unchecked(f"the Service {namespace}/{name} was not checked ({exc})", strict)
    if service is None:
        return allow()  # the export may come before the Service (status: Valid=False, NoService)
    if service.type == "ExternalName":
        return allow(warnings=[_external_name_warning(namespace, name)])
    try:
        conflicts = [
            (str(reason), str(message))
            for reason, message in facts.export_conflicts(namespace, name, cast(ServiceExport, obj), service)
        ]
    except NotSynced as exc:
        return _unchecked(f"conflicts with the other clusters' exports were not checked ({exc})", strict)
    if not conflicts:
        return allow()
    warnings = [f"{reason}: {message}" for reason, message in conflicts]
    if not strict or metadata.get("deletionTimestamp"):
        return allow(warnings=warnings)
    if request.operation == "UPDATE" and request.old_object is not None:
        try:
            before = {
                str(reason)
                for reason, _ in facts.export_conflicts(
                    namespace, name, cast(ServiceExport, request.old_object), service
                )
            }
        except NotSynced:  # cannot happen right after a successful call; be safe anyway
            before = set()
        new = [c for c in conflicts if c[0] not in before]
        if not new:
            return allow(warnings=warnings)
        conflicts = new
    details = "; ".join(f"{reason}: {message}" for reason, message in conflicts)
    return deny(
        f"this export conflicts with what other clusters of the ClusterSet export, and mcs-apiserver runs with "
        f"--export-conflict-policy=deny: {details}; make the Service (or spec.exportedLabels / "
        "spec.exportedAnnotations) match the other clusters' exports"
    )


def _external_name_warning(namespace: str, name: str) -> str:
    return (
        f"InvalidServiceType: Service {namespace}/{name} is of type ExternalName, so this export will not be "
        "imported (its status gets Valid=False/InvalidServiceType): an ExternalName Service is only a DNS alias "
        "with no endpoints for other clusters to reach; export a ClusterIP or headless Service instead"
    )


def _unchecked(what: str, strict: bool) -> Decision:
    if strict:
        return unavailable(f"{what}, and mcs-apiserver runs with --export-conflict-policy=deny; retry in a few seconds")
    return allow(warnings=[f"mcs-apiserver is still syncing: {what}"])


def _bad_name(name: str) -> str:
    suggestion = suggest_dns1123_label(name)
    if suggestion and not suggestion[0].isalpha():
        suggestion = ("svc-" + suggestion)[:63].rstrip("-")
    shown = repr(name) if len(name) <= 80 else repr(name[:77] + "...")
    return (
        f"{shown} cannot name a Service, and a ServiceExport exports the Service of the same name: a Service name "
        "must be an RFC 1035 label (lower case alphanumeric characters or '-', starting with a letter, ending "
        f"with an alphanumeric character, at most 63 characters), e.g. {suggestion or 'my-service'!r}"
    )


def admit_service_export(
    request: AdmissionRequest,
    facts: AdmissionFacts,
    *,
    policy: ConflictPolicy = "warn",
    now: Callable[[], datetime] = utc_now,
) -> Decision:
    """Stamp, then validate, in ONE webhook call: what the registered (mutating) webhook runs.

    Every ServiceExport create costs kube-apiserver one round trip to us instead of two (the
    benchmark showed each call adds about as much as the create itself). Validating inside a
    mutating webhook is sound here because it is registered with ``reinvocationPolicy: IfNeeded``:
    if a later mutating webhook changes the export, kube-apiserver calls this one again with the
    final object, so the verdict is always about what gets stored. The separate
    ``mutate_service_export`` and ``validate_service_export`` stay available on their own paths for
    clusters that prefer a classic ValidatingWebhookConfiguration.
    """
    stamped = mutate_service_export(request, facts, now=now)
    if not stamped.allowed:
        return stamped
    checked = request
    if stamped.patch and request.object is not None:
        checked = dataclasses.replace(request, object=patched(request.object, stamped.patch))
    verdict = validate_service_export(checked, facts, policy=policy)
    warnings = stamped.warnings + verdict.warnings
    if not verdict.allowed:
        return dataclasses.replace(verdict, warnings=warnings)
    return allow(patch=stamped.patch, warnings=warnings)


def patched(obj: dict[str, Any], patch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``obj`` with ``patch`` applied, copying only the dicts on the changed paths.

    Our patches only ``add`` members of objects; the general (deep-copying) ``jsonpatch`` costs a
    quarter of a millisecond per admission for a ServiceExport, so it is only the fallback.
    """
    if any(op.get("op") != "add" for op in patch):
        return jsonpatch.apply_patch(obj, list(patch))
    result = dict(obj)
    for op in patch:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                return jsonpatch.apply_patch(obj, list(patch))
            node[part] = child = dict(child)
            node = child
        node[parts[-1]] = op["value"]
    return result
