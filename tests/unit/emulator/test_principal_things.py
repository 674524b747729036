"""emulator/store/principal_things.py: moto's attachment dict, indexed both ways by every mutation."""

from __future__ import annotations

import pickle

from emulator.store.principal_things import PrincipalThings, indexed


def test_every_mutation_keeps_both_indexes():
    pairs = PrincipalThings([(("c1", "t1"), "v"), (("c1", "t2"), "v")])
    pairs[("c2", "t1")] = "v"
    pairs.setdefault(("c3", "t3"), "v")
    assert pairs.things_of("c1") == ["t1", "t2"] and pairs.principals_of("t1") == ["c1", "c2"]
    del pairs[("c1", "t1")]
    assert pairs.pop(("c2", "t1")) == "v" and pairs.pop(("nope", "x"), None) is None
    assert pairs.things_of("c1") == ["t2"] and pairs.principals_of("t1") == []
    pairs.update({("c4", "t4"): "v"})
    key, _ = pairs.popitem()
    assert key == ("c4", "t4") and pairs.things_of("c4") == []
    pairs.clear()
    assert pairs == {} and pairs.things_of("c1") == []


def test_a_snapshot_restores_the_items_and_the_index():
    pairs = PrincipalThings([(("c1", "t1"), ("principal", "thing"))])
    restored = pickle.loads(pickle.dumps(pairs))
    assert isinstance(restored, PrincipalThings) and restored == pairs
    assert restored.things_of("c1") == ["t1"] and restored.principals_of("t1") == ["c1"]


def test_indexed_replaces_a_plain_dict_once_and_keeps_its_items():
    class Backend:
        principal_things = {("c1", "t1"): "v"}

    backend = indexed(Backend())
    first = backend.principal_things
    assert isinstance(first, PrincipalThings) and first.things_of("c1") == ["t1"]
    assert indexed(backend).principal_things is first
