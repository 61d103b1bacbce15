"""``KeySchema.filter_from_text``: key filters given as text (command-line arguments, query
parameters) become typed filters, or a typed InvalidKeyError; nothing is guessed."""

from __future__ import annotations

import pytest

from curvestore.core.config import KeySchema
from curvestore.errors import InvalidKeyError

SCHEMA = KeySchema.from_spec({"site": str, "year": int})


def test_values_take_their_key_type_in_key_order() -> None:
    assert SCHEMA.filter_from_text({"year": "2024", "site": "paris"}) == {
        "site": "paris", "year": 2024}
    assert SCHEMA.filter_from_text({"year": "-7"}) == {"year": -7}
    assert SCHEMA.filter_from_text({"year": "+007"}) == {"year": 7}
    assert SCHEMA.filter_from_text({"site": "2024"}) == {"site": "2024"}  # a str key stays text
    assert SCHEMA.filter_from_text({}) == {}


@pytest.mark.parametrize("text", ["9223372036854775807", "-9223372036854775808",
                                  "00000000000000000000009"])
def test_the_64_bit_range_is_accepted(text: str) -> None:
    assert SCHEMA.filter_from_text({"year": text}) == {"year": int(text)}


@pytest.mark.parametrize("text", ["9223372036854775808", "-9223372036854775809", "9" * 5000])
def test_beyond_64_bits_is_refused(text: str) -> None:
    with pytest.raises(InvalidKeyError, match="signed 64-bit integer") as info:
        SCHEMA.filter_from_text({"year": text})
    assert len(str(info.value)) < 200  # a huge value is clipped in the message


@pytest.mark.parametrize("text", ["abc", "", "1.0", "1e3", " 12", "12 ", "1_000", "\uff11",
                                  "0x10", "--1"])
def test_an_int_key_takes_only_plain_digits(text: str) -> None:
    with pytest.raises(InvalidKeyError, match=r"'year' is an int key; .* is not an integer"):
        SCHEMA.filter_from_text({"year": text})


def test_unknown_names_are_listed_with_the_keys_and_the_other_names() -> None:
    with pytest.raises(InvalidKeyError, match=r"unknown key 'color', 'n'; this store's keys "
                                              r"are site, year$") as info:
        SCHEMA.filter_from_text({"color": "red", "site": "a", "n": "1"})
    assert info.value.key == {"color": "red", "site": "a", "n": "1"}
    with pytest.raises(InvalidKeyError, match=r"site, year \(and _cursor, _limit\)$"):
        SCHEMA.filter_from_text({"color": "red"}, others=("_cursor", "_limit"))
    with pytest.raises(InvalidKeyError, match="this store has no key attributes"):
        KeySchema((), ()).filter_from_text({"site": "a"})


def test_str_values_the_backends_cannot_store_are_refused() -> None:
    with pytest.raises(InvalidKeyError, match="NUL"):
        SCHEMA.filter_from_text({"site": "a\x00b"})
    with pytest.raises(InvalidKeyError, match="not valid Unicode"):
        SCHEMA.filter_from_text({"site": "\ud800"})
