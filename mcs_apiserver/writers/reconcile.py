"""Desired vs. existing published objects: what to create, update and delete. Pure.

Ownership: only objects that carry our managed-by label are ever updated or deleted; a name taken
by someone else's object is reported as a clash and left alone. "Equal" means every field we set
has the value we want (``covers``): fields the API server or other managers add (defaults,
``managedFields``, someone else's label) are not ours to judge, so they never cause a write, and a
second reconcile of an unchanged state writes nothing (no flapping).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: (namespace, name) of a published object
ObjectKey = tuple[str, str]


def covers(actual: Any, wanted: Any) -> bool:
    """Whether ``actual`` has every field of ``wanted`` with the same value (dicts recursively)."""
    if isinstance(wanted, dict):
        if not isinstance(actual, dict):
            return False
        return all(k in actual and covers(actual[k], v) for k, v in wanted.items())
    return bool(actual == wanted)


def owned(obj: Mapping[str, Any], label: str, value: str) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(label) == value


@dataclass
class Plan:
    create: list[ObjectKey] = field(default_factory=list)
    update: list[ObjectKey] = field(default_factory=list)
    delete: list[ObjectKey] = field(default_factory=list)
    clashes: list[ObjectKey] = field(default_factory=list)  #: desired names held by foreign objects

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


def plan(
    desired: Mapping[ObjectKey, Mapping[str, Any]],
    existing: Mapping[ObjectKey, Mapping[str, Any]],
    label: str,
    value: str,
    manager: str,
    scope: set[ObjectKey] | None = None,
) -> Plan:
    """The writes that make ``existing`` hold ``desired``.

    ``existing``: what the cluster holds (ours and, where known, foreign objects of the same names).
    ``manager``: our server-side apply field manager.
    ``scope``: only these keys are looked at (an incremental pass); None = everything (a resync,
    which also finds orphans: our objects that nothing wants any more).
    """
    result = Plan()
    keys = set(desired) | set(existing) if scope is None else scope
    for key in sorted(keys):
        want = desired.get(key)
        have = existing.get(key)
        if have is not None and not owned(have, label, value):
            if want is not None:
                result.clashes.append(key)
            continue
        if want is None:
            if have is not None:
                result.delete.append(key)
        elif have is None:
            result.create.append(key)
        elif needs_update(have, want, manager):
            result.update.append(key)
    return result


def needs_update(have: Mapping[str, Any], want: Mapping[str, Any], manager: str) -> bool:
    """Whether ``have`` lacks a field of ``want`` or keeps a label/annotation we stopped setting."""
    return not covers(have, want) or not _same_labels(have, want, manager)


def _same_labels(have: Mapping[str, Any], want: Mapping[str, Any], manager: str) -> bool:
    """No label or annotation that we set before and stopped setting (an exported label removed).

    Which keys are ours is read from the object's ``managedFields`` (server-side apply records
    them per field manager), so someone else's label on our object never counts as a change.
    """
    metadata = have.get("metadata") or {}
    ours: dict[str, Any] = {}
    for entry in metadata.get("managedFields") or ():
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            ours = (entry.get("fieldsV1") or {}).get("f:metadata") or {}
    for part in ("labels", "annotations"):
        wanted = (want.get("metadata") or {}).get(part) or {}
        owned_keys = {k[2:] for k in ours.get(f"f:{part}") or {} if k.startswith("f:")}
        if any(k not in wanted for k in owned_keys if k in (metadata.get(part) or {})):
            return False
    return True
