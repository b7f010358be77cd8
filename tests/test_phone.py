"""Numbers as written -> E.164, and the lookup keys of an incoming caller-ID."""

from __future__ import annotations

import pytest

from ucware_contactsync.phone import lookup_keys, to_e164


@pytest.mark.parametrize(("written", "e164"), [
    ("+49 89 12345-0", "+4989123450"),        # DIN 5008 switchboard suffix
    ("030 1234-567", "+49301234567"),          # DIN 5008 direct dial
    ("089 / 12 34 56", "+4989123456"),
    ("(089) 123456", "+4989123456"),
    ("0049 30 1234567", "+49301234567"),
    ("+49 (0)89 1234567", "+49891234567"),
    ("0171 1234567", "+491711234567"),
    ("+1 (212) 555-0100", "+12125550100"),
    ("+44 20 7946 0958", "+442079460958"),
    ("089 1234567 ext. 12", "+49891234567"),   # marked extension: main number
    ("089 1234567 Durchwahl 12", "+49891234567"),
    ("n/a", None),
    ("tbd", None),
    ("", None),
    ("123", None),                              # internal extension
    ("110", None),
])
def test_to_e164(written, e164):
    assert to_e164(written, "DE") == e164


def test_region_matters():
    assert to_e164("01 234 56 78", "AT") == "+4312345678"
    assert to_e164("044 123 45 67", "CH") == "+41441234567"


@pytest.mark.parametrize("caller", [
    "+4989123456", "089123456", "0049 89 123456", "+49 (0)89 12 34 56", "089/123456",
    "089-123456", "(089) 123456", "4989123456",
])
def test_lookup_keys_any_format(caller):
    assert lookup_keys(caller, "DE")[0] == "+4989123456"


def test_lookup_keys_switchboard_candidates():
    keys = lookup_keys("+49 89 12345 17", "DE")
    assert keys[0] == "+49891234517"
    assert "+4989123450" in keys
