"""Exponential backoff with full jitter: the waits between a device's connection attempts."""

from __future__ import annotations

import pytest

from base.backoff import Backoff
from base.errors import InvalidInputError


def test_the_ceiling_doubles_from_the_base_until_the_cap():
    backoff = Backoff(base=0.5, cap=5.0, attempts=8)
    assert [backoff.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_full_jitter_draws_uniformly_between_zero_and_the_ceiling():
    backoff = Backoff(base=1.0, cap=30.0)
    assert backoff.delay(3, rand=lambda: 0.0) == 0.0
    assert backoff.delay(3, rand=lambda: 0.5) == 4.0
    assert backoff.delay(3, rand=lambda: 0.999) == pytest.approx(7.992)


def test_there_is_one_wait_fewer_than_attempts():
    assert list(Backoff(base=1.0, cap=2.0, attempts=4).delays(rand=lambda: 1.0)) == [1.0, 2.0, 2.0]
    assert list(Backoff(attempts=1).delays()) == []


def test_a_huge_retry_number_stays_at_the_cap():
    assert Backoff(base=1.0, cap=30.0).ceiling(10_000) == 30.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base": 0}, "base must be more than 0"),  # no wait at all would hammer the endpoint
        ({"base": 2.0, "cap": 1.0}, "cap .* must be at least its base"),
        ({"attempts": 0}, "At least one connection attempt"),
    ],
)
def test_nonsense_settings_are_refused_with_a_sentence(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        Backoff(**kwargs)
