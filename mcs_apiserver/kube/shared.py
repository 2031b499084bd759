"""One shared copy of the JSON fragments that thousands of objects repeat: ``sys.intern`` for lists and dicts.

Ten thousand Services that each serve ``80/TCP`` as ``http`` hold ten thousand equal port lists, and
the ServiceImports derived from them as many equal port lists, ``ipFamilies`` lists and conditions
(the same reason and message, stamped in the same second). ``SharedCopies.of`` hands back one
canonical copy of each distinct value, so an instance pays for a fragment once, not once per object.

The copies are shared between objects, so nobody may mutate them: the member caches and the views
are read-only by contract already (``contract.MemberView``, ``views/engine.py``). A fragment is the
same only if it is equal *and* of the same types, key order included (``True`` is not ``1``, a list
is not a tuple, ``{"a", "b"}`` in another order serializes differently). The table is bounded: when
full it starts over, which costs sharing, never correctness.
"""

from __future__ import annotations

from sys import intern
from typing import Any, Hashable, TypeVar

T = TypeVar("T")

__all__ = ["SharedCopies", "interned"]


def interned(value: Any) -> Any:
    """``value`` as the one shared copy of that string (anything else as is): ``sys.intern`` for
    the names, namespaces and timestamps thousands of cached objects repeat."""
    return intern(value) if type(value) is str else value


def _frozen(value: Any) -> Hashable:
    """A hashable key equal only for values of the same JSON shape, types and key order.

    A string is its own key (nothing else is a string: other scalars become ``(type, value)``,
    containers ``(type, ...)``), which keeps the common case to one loop step. Raises TypeError for
    what JSON does not hold (a set, an object; tuples and named tuples of JSON values are accepted):
    such a value is not shared."""
    kind = type(value)
    if kind is str:
        return value
    if kind is dict:
        key: list[Any] = [dict]
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError("not a JSON object key")
            key.append(k)
            key.append(v if type(v) is str else _frozen(v))
        return tuple(key)
    if kind is list or isinstance(value, tuple):  # named tuples too: the class is part of the key
        key = [kind]
        for v in value:
            key.append(v if type(v) is str else _frozen(v))
        return tuple(key)
    if value is None or kind is int or kind is float or kind is bool:
        return (kind, value)
    raise TypeError(f"not a JSON value: {kind.__name__}")


class SharedCopies:
    """A bounded table of canonical JSON fragments (see the module docstring)."""

    __slots__ = ("_copies", "_limit")

    def __init__(self, limit: int = 50_000) -> None:
        self._copies: dict[Hashable, Any] = {}
        self._limit = limit

    def __len__(self) -> int:
        return len(self._copies)

    def of(self, value: T) -> T:
        """The shared copy equal to ``value`` (``value`` itself the first time it is seen)."""
        try:
            key = _frozen(value)
        except TypeError:
            return value
        found = self._copies.get(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        if len(self._copies) >= self._limit:
            self._copies.clear()
        self._copies[key] = value
        return value
