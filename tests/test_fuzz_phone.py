"""Fuzzing the phone normaliser (phone.py): any text in, valid E.164 or None out, never an
exception; E.164 is a fixed point; every way of writing one number gives the same E.164, and
the caller-ID lookup finds an entry whatever format it was stored and called in.

Profile (derandomized, no example database) is set in tests/conftest.py.
"""

from __future__ import annotations

import io
import json
import re
import string
from contextlib import redirect_stderr, redirect_stdout

import phonenumbers as pn
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ucware_contactsync import db as dbmod
from ucware_contactsync import phone
from ucware_contactsync.cli import main
from ucware_contactsync.phone import lookup_keys, to_e164

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
REGIONS = ["DE", "AT", "CH", "GB", "FR", "NL", "IT", "ES", "PL", "US"]
# Regions whose international call prefix is 00 (so "0049 ..." is an international number).
PREFIX_00 = [r for r in REGIONS if r != "US"]

phone_like = st.text(alphabet=string.digits + " +-()/.,;:#*xXtDWw\u00a0\u2011\uff10\uff11",
                     max_size=30)
any_text = st.one_of(phone_like, st.text(max_size=40))


def _valid_e164(value: str) -> bool:
    return bool(E164.match(value)) and pn.is_possible_number(pn.parse(value, None))


@settings(max_examples=400)
@given(text=any_text, region=st.sampled_from(REGIONS))
def test_any_text_gives_e164_or_none_and_never_raises(text: str, region: str) -> None:
    out = to_e164(text, region)
    assert out is None or _valid_e164(out), out
    keys = lookup_keys(text, region)
    assert all(E164.match(k) for k in keys), keys
    if out is not None:
        assert keys[0] == out
        # A fixed point: the E.164 written as is, in any default region, gives itself.
        for other in ("DE", "US", region):
            assert to_e164(out, other) == out
            assert lookup_keys(out, other)[0] == out


plain_like = st.text(alphabet=string.digits + " ()-/.+", min_size=1, max_size=25)


@settings(max_examples=400)
@given(text=plain_like)
def test_fast_path_for_plain_numbers_is_the_full_path(text: str) -> None:
    """phone.py skips its label/note/extension patterns and libphonenumber's digit walk for
    plain ASCII numbers; both shortcuts must give what the full path gives."""
    text = text.strip()
    assume(text)
    assert phone._strip(text) == phone._strip_words(text)
    assert phone._NOT_ASCII_DIGIT.sub("", text) == pn.normalize_digits_only(text)


@st.composite
def numbers(draw: st.DrawFn, regions: list[str] = REGIONS) -> tuple[pn.PhoneNumber, str]:
    """A valid number of a region (its example number with random last digits)."""
    region = draw(st.sampled_from(regions))
    kind = draw(st.sampled_from([pn.PhoneNumberType.FIXED_LINE, pn.PhoneNumberType.MOBILE]))
    example = pn.example_number_for_type(region, kind)
    nsn = pn.national_significant_number(example)
    tail = draw(st.text(string.digits, min_size=3, max_size=3))
    number = pn.parse("+" + str(example.country_code) + nsn[:-3] + tail, None)
    assume(pn.is_valid_number(number) and pn.region_code_for_number(number) == region)
    return number, region


def _regroup(draw: st.DrawFn, digits: str) -> str:
    """The digits cut into random groups joined by what people type between them."""
    out, i = [], 0
    while i < len(digits):
        n = draw(st.integers(1, 5))
        out.append(digits[i:i + n])
        i += n
        if i < len(digits):
            out.append(draw(st.sampled_from([" ", " ", "", "-", "/", " / ", ".", "  "])))
    return "".join(out)


@st.composite
def written_forms(draw: st.DrawFn, number: pn.PhoneNumber, region: str) -> str:
    """One way a person writes ``number`` (national only when read in its own region)."""
    cc = str(number.country_code)
    nsn = pn.national_significant_number(number)
    national = re.sub(r"\D", "", pn.format_number(number, pn.PhoneNumberFormat.NATIONAL))
    forms = ["e164", "international", "00", "national"]
    if national.startswith("0") and not nsn.startswith("0") and region in PREFIX_00:
        forms += ["(0)", "(area)"]
    form = draw(st.sampled_from(forms))
    if form == "e164":
        text = "+" + cc + nsn
    elif form == "international":
        text = f"+{cc} {_regroup(draw, nsn)}"
    elif form == "00":
        assume(region in PREFIX_00)
        text = f"00{cc} {_regroup(draw, nsn)}"
    elif form == "(0)":
        text = f"+{cc} (0){_regroup(draw, nsn)}"
    elif form == "(area)":
        split = draw(st.integers(2, min(5, len(national) - 3)))
        text = f"({national[:split]}) {_regroup(draw, national[split:])}"
    else:
        text = _regroup(draw, national) if region != "US" else pn.format_number(
            number, pn.PhoneNumberFormat.NATIONAL)
    # A marked extension is not part of the E.164 (admin guide, "Phone numbers").
    suffix = draw(st.sampled_from(["", "", "", " ext. 12", " x 5", " Durchwahl 3", " DW 17"]))
    return draw(st.sampled_from(["", " ", "\t"])) + text + suffix


@settings(max_examples=300)
@given(data=st.data())
def test_formatting_variants_give_the_same_e164_and_lookup_keys(data: st.DataObject) -> None:
    number, region = data.draw(numbers())
    e164 = pn.format_number(number, pn.PhoneNumberFormat.E164)
    for _ in range(3):
        written = data.draw(written_forms(number, region))
        assert to_e164(written, region) == e164, written
        assert lookup_keys(written, region)[0] == e164, written
    # A caller-ID without the plus: found through the "+digits" fallback unless the digits
    # are a valid national number of the default region themselves.
    bare = e164[1:]
    if to_e164(bare, region) is None and len(bare) > 8:
        assert lookup_keys(bare, region)[0] == e164


# -- end to end: stored in one format, called in another ---------------------------------------

@pytest.fixture(scope="module")
def phone_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A private SQLite database: the lookup does not depend on the backend (E.164 equality)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('phonefuzz') / 'lookup.db'}"
    engine = dbmod.make_engine(url)
    dbmod.upgrade(engine)
    engine.dispose()
    return url


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_lookup_finds_the_entry_whatever_format_it_was_stored_and_called_in(
        phone_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTSYNC_SYSLOG", "0")
    assert _run("--db", phone_db, "users", "add", "fuzz@contoso.de")[0] == 0
    names = iter(range(10**6))

    @settings(max_examples=25)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        number, region = data.draw(numbers(["DE"]))  # the database's default_region
        stored = data.draw(written_forms(number, region)).strip()
        called = data.draw(written_forms(number, region))
        name = f"Fuzz {next(names)}"
        code, _, err = _run("--db", phone_db, "phonebook", "add", "--user", "fuzz@contoso.de",
                            "--phonebook", "Fuzz", "--name", name, "--number",
                            f"business:{stored}")
        assert code == 0, err
        code, out, err = _run("--db", phone_db, "lookup", called, "--json")
        assert code == 0, (stored, called, err)
        hits = json.loads(out)
        assert name in {h["display_name"] for h in hits}, (stored, called, hits)
        assert {h["e164"] for h in hits} == {pn.format_number(number, pn.PhoneNumberFormat.E164)}

    check()
