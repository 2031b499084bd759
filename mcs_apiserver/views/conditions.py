"""Status conditions and timestamps, shared by the ServiceImport and ClusterSet views.

The views are recomputed from scratch, so a freshly derived condition knows nothing of when it
last changed. To stay pure, the caller hands in the previously served conditions: a condition whose
``status`` is unchanged keeps its ``lastTransitionTime`` (the Kubernetes convention of
``meta.SetStatusCondition``: a new reason or message is not a transition), anything else gets ``now``.
This also keeps a recomputation that changes nothing from producing a different object, which would
otherwise send a spurious watch event.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from mcs_apiserver.kube.types import Condition

#: Kubernetes caps a condition message at 32768 characters; longer ones are rejected on write.
MAX_CONDITION_MESSAGE = 32768


def truncate_message(message: str) -> str:
    """Keep a condition message within the length Kubernetes accepts."""
    if len(message) <= MAX_CONDITION_MESSAGE:
        return message
    return message[: MAX_CONDITION_MESSAGE - 3] + "..."


def condition(type_: str, status: bool | None, reason: str, message: str) -> Condition:
    """A condition without ``lastTransitionTime`` (see ``stamp_transitions``); None = ``Unknown``."""
    return {
        "type": type_,
        "status": "Unknown" if status is None else "True" if status else "False",
        "reason": reason,
        "message": truncate_message(message),
    }


def stamp_transitions(
    conditions: Sequence[Condition], previous: Iterable[Condition] | None, now: str
) -> list[Condition]:
    """Set ``lastTransitionTime`` on ``conditions`` (in place, and returned).

    A condition whose type had the same status in ``previous`` keeps that condition's time; any
    other gets ``now``.
    """
    before: dict[str, Condition] = {}
    if previous:
        for old in previous:
            before[old.get("type", "")] = old
    for cond in conditions:
        match = before.get(cond["type"])
        if match is not None and match.get("status") == cond["status"] and match.get("lastTransitionTime"):
            cond["lastTransitionTime"] = match["lastTransitionTime"]
        else:
            cond["lastTransitionTime"] = now
    return list(conditions)
