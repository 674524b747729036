"""The packages stay in layers: no import cycle, and every import points down (docs/architecture.md).

The graph is read from every module's import statements (tests/import_graph.py), lazy and
``TYPE_CHECKING`` ones included, so a cycle hidden from the interpreter is still a cycle here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.import_graph import external_imports, find_cycle, module_graph, package_graph

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("base", "ca", "cli", "cloud", "device", "emulator", "fleet", "rules", "functions", "user")
# Which project package may import which: the picture in docs/architecture.md, read top to bottom.
ALLOWED = {
    "cli": {"base", "ca", "cloud", "device", "emulator", "fleet", "rules", "user"},
    "user": {"base", "cloud"},  # the phone app's side: Cognito, the users API, MQTT over WebSocket
    "fleet": {"base", "ca", "cloud"},
    "emulator": {"base", "ca", "cloud", "rules"},
    "ca": {"base", "cloud"},
    "device": {"base"},
    "cloud": {"base"},
    "rules": {"base"},
    "base": set(),
    "functions": set(),  # the Lambda runs without the kit: standard library and boto3 only
}


@pytest.fixture(scope="module")
def imports():
    return external_imports(ROOT, PACKAGES)


@pytest.fixture(scope="module")
def graph(imports):
    found = module_graph(imports)
    assert len(found) > 80 and "cli.wiring" in found and "emulator.local" in found  # the whole tree was read
    return found


def test_no_module_imports_another_that_imports_it_back(graph):
    assert find_cycle(graph) is None


@pytest.mark.parametrize("depth", [1, 2])
def test_no_package_or_subpackage_imports_one_that_imports_it_back(graph, depth):
    assert find_cycle(package_graph(graph, depth)) is None


def test_every_import_between_packages_points_down(graph):
    arrows = package_graph(graph, 1)
    forbidden = sorted((source, target) for source, targets in arrows.items() for target in targets - ALLOWED[source])
    assert forbidden == []


def test_device_imports_only_the_base_package_cryptography_paho_and_the_standard_library(imports):
    # certifi: an optional last-resort trust store (device/tls.py works without it), not a library's internals
    allowed = {"device", "base", "cryptography", "paho", "certifi", "__future__"} | set(sys.stdlib_module_names)
    outside = sorted(
        (module, name)
        for module, names in imports.items()
        if module.split(".")[0] == "device"
        for name in names
        if name and name.split(".")[0] not in allowed
    )
    assert outside == []


def test_moto_models_are_imported_only_in_the_emulators_store(imports):
    offenders = sorted(
        (module, name)
        for module, names in imports.items()
        for name in names
        if name.startswith("moto.") and ".models" in name and not module.startswith("emulator.store")
    )
    assert offenders == []


def test_amqtt_is_imported_only_in_the_emulators_mqtt_package(imports):
    offenders = sorted(
        (module, name)
        for module, names in imports.items()
        for name in names
        if name.split(".")[0] in ("amqtt", "transitions") and not module.startswith("emulator.mqtt")
    )
    assert offenders == []


# -- the checks themselves can fail -------------------------------------------------------------------------


def test_a_cycle_through_three_modules_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]


def test_a_graph_without_a_cycle_passes_even_with_shared_targets():
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_a_lazy_import_inside_a_function_still_makes_an_arrow(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "one.py").write_text("from pkg import two\n")
    (tmp_path / "pkg" / "two.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.one import x\n"
        "def late():\n    from .one import y\n"
    )
    graph = module_graph(external_imports(tmp_path, ["pkg"]))
    assert graph["pkg.one"] == {"pkg.two"} and graph["pkg.two"] == {"pkg.one"}
    assert find_cycle(graph) == ["pkg.one", "pkg.two", "pkg.one"]


def test_package_level_cycles_are_found_where_modules_alone_have_none():
    graph = {"x.a": {"y.b"}, "y.b": set(), "y.c": {"x.d"}, "x.d": set()}
    assert find_cycle(graph) is None
    assert find_cycle(package_graph(graph, 1)) == ["x", "y", "x"]
