"""API Gateway's route choice: the most specific route wins, as AWS's routing rules say."""

from __future__ import annotations

from emulator.apigateway.routing import choose
from emulator.store.gateway import Route


def route(key: str) -> Route:
    method, _, path = key.partition(" ")
    if key == "$default":
        method, path = "ANY", "$default"
    return Route(method=method, path=path, route_key=key, function_arn=None, payload_version="2.0")


ROUTES = [
    route("GET /pets/{id}"),
    route("GET /pets/dog"),
    route("ANY /pets/{id}"),
    route("GET /pets/{proxy+}"),
    route("$default"),
]


def chosen(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    match = choose(ROUTES, method, path)
    return (match.route.route_key, match.path_parameters) if match else None


def test_a_literal_path_beats_a_path_variable():
    assert chosen("GET", "/pets/dog") == ("GET /pets/dog", {})


def test_a_routes_own_method_beats_any():
    assert chosen("GET", "/pets/cat") == ("GET /pets/{id}", {"id": "cat"})
    assert chosen("DELETE", "/pets/cat") == ("ANY /pets/{id}", {"id": "cat"})


def test_a_greedy_variable_takes_the_rest_of_the_path_after_full_matches():
    assert chosen("GET", "/pets/cat/toys/1") == ("GET /pets/{proxy+}", {"proxy": "cat/toys/1"})


def test_default_route_takes_what_nothing_else_does_and_without_it_nothing_matches():
    assert chosen("POST", "/owners") == ("$default", {})
    assert choose(ROUTES[:2], "POST", "/owners") is None


def test_path_parameters_are_percent_decoded():
    assert chosen("GET", "/pets/tom%20cat") == ("GET /pets/{id}", {"id": "tom cat"})
