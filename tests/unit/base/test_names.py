"""Thing names, country codes and common names."""

from __future__ import annotations

import pytest

from base.errors import InvalidCountryError, InvalidInputError, InvalidThingNameError
from base.names import check_common_name, check_country, check_thing_name


@pytest.mark.parametrize("name", ["dev-1", "a", "Sensor_01:eu", "x" * 64])
def test_valid_thing_names_pass(name):
    assert check_thing_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",  # empty
        "has space",  # space is not in [a-zA-Z0-9:_-]
        "dev/1",  # slash would break topics
        "dév",  # non-ASCII
        "x" * 129,  # over AWS's 128
    ],
)
def test_invalid_thing_names_are_refused(name):
    with pytest.raises(InvalidThingNameError, match="Invalid thing name"):
        check_thing_name(name)


def test_thing_names_longer_than_a_cn_are_refused():
    with pytest.raises(InvalidThingNameError, match="at most 64"):
        check_thing_name("x" * 65)


@pytest.mark.parametrize("code", ["de", "DEU", "D", "1A", ""])
def test_country_must_be_two_upper_case_letters(code):
    with pytest.raises(InvalidCountryError, match="two upper-case letters"):
        check_country(code)


def test_common_name_length_is_bounded():
    with pytest.raises(InvalidInputError, match="1 to 64"):
        check_common_name("c" * 65)
