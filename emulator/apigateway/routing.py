"""Which route a request takes, as API Gateway chooses: the most specific path first.

HTTP APIs (AWS's "Routing API requests"): a route whose path matches in full, literal segments before
path variables; then one with a greedy variable (``{proxy+}``); a route of the request's method before
an ``ANY`` route of the same path; ``$default`` last. REST APIs resolve the resource the same way, then
its method (``ANY`` when no method of the request's own is defined).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from emulator.store.gateway import Route

_VARIABLE = re.compile(r"^\{(?P<name>[A-Za-z0-9._-]+)(?P<greedy>\+)?\}$")


@dataclass(frozen=True)
class Match:
    route: Route
    path_parameters: dict[str, str]


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _match_path(template: str, path: str) -> tuple[dict[str, str], tuple[int, int]] | None:
    """The path parameters if ``path`` fits ``template``, with a rank: (literal segments, not greedy)."""
    wanted, given = _segments(template), _segments(path)
    parameters: dict[str, str] = {}
    literals = 0
    for index, part in enumerate(wanted):
        variable = _VARIABLE.match(part)
        if variable and variable.group("greedy"):
            if index != len(wanted) - 1 or index >= len(given):
                return None  # a greedy variable is last and matches at least one segment
            parameters[variable.group("name")] = "/".join(unquote(p) for p in given[index:])
            return parameters, (literals, 0)
        if index >= len(given):
            return None
        if variable:
            parameters[variable.group("name")] = unquote(given[index])
        elif part != given[index]:
            return None
        else:
            literals += 1
    if len(given) != len(wanted):
        return None
    return parameters, (literals, 1)


def choose(routes: Iterable[Route], method: str, path: str) -> Match | None:
    """The route a ``method`` request for ``path`` takes, None when none does (HTTP API 404, REST 403)."""
    best: tuple[tuple[int, int, int, int], Match] | None = None
    default: Route | None = None
    for route in routes:
        if route.path == "$default":
            default = route
            continue
        if route.method not in (method, "ANY"):
            continue
        found = _match_path(route.path, path)
        if found is None:
            continue
        parameters, (literals, full) = found
        rank = (full, literals, -len(parameters), 1 if route.method == method else 0)
        if best is None or rank > best[0]:
            best = (rank, Match(route, parameters))
    if best is not None:
        return best[1]
    return Match(default, {}) if default is not None else None
