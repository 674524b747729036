"""moto's thing attachments, indexed both ways.

moto keeps every (certificate ARN, thing name) attachment in one dict and answers ListPrincipalThings and
ListThingPrincipals by scanning all of it: a fleet of N devices costs O(N) a call, and auditing it O(N^2).
:class:`PrincipalThings` is that dict with an index by principal and by thing, kept by every mutation, and
:func:`indexed` puts it in place of a backend's dict (the backends module does, on each access).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

_lock = threading.Lock()


class PrincipalThings(dict):
    """``{(principal_arn, thing_name): (principal, thing)}``, as moto has it, plus both lookups in O(1)."""

    def __init__(self, items: Iterable[tuple[tuple[str, str], Any]] = ()) -> None:
        super().__init__()
        self._things: dict[str, set[str]] = {}
        self._principals: dict[str, set[str]] = {}
        for key, value in dict(items).items():
            self[key] = value

    def __reduce__(self) -> tuple:  # pickled (snapshots) as its items; the index is built again
        return (PrincipalThings, (list(self.items()),))

    def __setitem__(self, key: tuple[str, str], value: Any) -> None:
        super().__setitem__(key, value)
        principal, thing = key
        self._things.setdefault(principal, set()).add(thing)
        self._principals.setdefault(thing, set()).add(principal)

    def __delitem__(self, key: tuple[str, str]) -> None:
        super().__delitem__(key)
        self._forget(key)

    def _forget(self, key: tuple[str, str]) -> None:
        principal, thing = key
        for index, name, other in ((self._things, principal, thing), (self._principals, thing, principal)):
            held = index.get(name)
            if held is not None:
                held.discard(other)
                if not held:
                    del index[name]

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            value = super().pop(key)
            self._forget(key)
            return value
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        key, value = super().popitem()
        self._forget(key)
        return key, value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        super().clear()
        self._things.clear()
        self._principals.clear()

    def things_of(self, principal_arn: str) -> list[str]:
        return sorted(self._things.get(principal_arn, ()))

    def principals_of(self, thing_name: str) -> list[str]:
        return sorted(self._principals.get(thing_name, ()))


def indexed(backend: Any) -> Any:
    """``backend`` with its ``principal_things`` a :class:`PrincipalThings` (replaced once, under a lock)."""
    if not isinstance(backend.principal_things, PrincipalThings):
        with _lock:
            if not isinstance(backend.principal_things, PrincipalThings):
                backend.principal_things = PrincipalThings(backend.principal_things.items())
    return backend
