"""orjson writes and reads our JSON: it must give exactly what the json module gave.

``compact_json`` feeds the content hashes stored with every synced entry: one differing byte
would make every entry of every phonebook "updated" on the first run after an upgrade, and
its history snapshot differ. Graph's answers are parsed by orjson first, json as before when
orjson refuses them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from datetime import datetime
from typing import Any

import pytest
import requests

from ucware_contactsync.contact import Contact, PhoneNumber, compact_json
from ucware_contactsync.sources.graph.batch import _json
from ucware_contactsync.testing.generator import random_contact_fields


def reference(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_every_code_point_is_written_as_json_writes_it() -> None:
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for i in range(0, len(chars), 4096):
        chunk = chars[i:i + 4096]
        assert compact_json(["".join(chunk), {"k" + chunk[0]: chunk[-1]}]) == \
            reference(["".join(chunk), {"k" + chunk[0]: chunk[-1]}])


@pytest.mark.parametrize("value", [
    "lone \ud800 surrogate", ["a", "\udfff"], {"x": ["\ud83d"]},  # orjson refuses: json's way
    None, [], {}, [None, True, False, 0, -1, 2**63 - 1], {"ä": {"b": [[], {}]}},
    "\x00\x1f\x7f\x80\x9f\u2028\u2029\ufeff", '"\\/',
])
def test_values_are_written_as_json_writes_them(value: Any) -> None:
    assert compact_json(value) == reference(value)


def test_what_json_refuses_is_refused() -> None:
    @dataclasses.dataclass
    class D:
        a: int = 1

    for value in (D(), datetime(2026, 12, 1), {1: "int key"}.items(), b"bytes"):
        with pytest.raises(TypeError):
            reference(value)
        with pytest.raises(TypeError):
            compact_json(value)


def test_content_hashes_are_those_stored_by_earlier_versions() -> None:
    # Computed with the json module alone (the code before orjson), for a fixed contact.
    c = Contact(display_name="Jürgen Weiß", given_name="Jürgen", surname="Weiß",
                company="Müller & Söhne GmbH", department="Vertrieb\tNord", job_title='"Chef"',
                emails=("jw@example.de",), categories=("VIP", "Kunden"),
                numbers=(PhoneNumber("business", "+49 (89) 12 34-56"),
                         PhoneNumber("mobile", "0171 1234567")))
    assert c.content_hash() == "e95d319f50f88d944da917fa5f70cf51bea6fa3a"
    rng = random.Random(17)
    for _ in range(2000):
        f = random_contact_fields(rng)
        c = Contact(**{**f, "emails": tuple(f["emails"]), "categories": tuple(f["categories"]),
                       "numbers": tuple(PhoneNumber(t, v) for t, v in f["numbers"].items())})
        payload = [c.name, c.given_name, c.surname, c.company, c.department, c.job_title,
                   list(c.emails), [[n.type, n.number] for n in c.numbers],
                   sorted(c.categories)]
        old = hashlib.sha256(reference(payload).encode("utf-8")).hexdigest()[:40]
        assert c.content_hash() == old


def response(body: bytes, content_type: str = "application/json") -> requests.Response:
    r = requests.Response()
    r.status_code = 200
    r._content = body
    r.headers["Content-Type"] = content_type
    return r


@pytest.mark.parametrize("body,content_type,expected", [
    (b'{"value":[{"displayName":"J\\u00fcrgen","x":1}]}', "application/json",
     {"value": [{"displayName": "Jürgen", "x": 1}]}),
    ('{"a":"ü"}'.encode(), "application/json; charset=utf-8", {"a": "ü"}),
    (b'{"a":"\\ud800"}', "application/json", {"a": "\ud800"}),  # orjson refuses: json
    ('{"a":"ü"}'.encode("utf-16"), "application/json; charset=utf-16", {"a": "ü"}),
    (b'{"a":1,"a":2}', "application/json", {"a": 2}),
    (b"<html>busy</html>", "text/html", None),
    (b"", "application/json", None),
])
def test_graph_answers_parse_as_before(body: bytes, content_type: str, expected: Any) -> None:
    got = _json(response(body, content_type))
    assert got == expected
    try:
        before = response(body, content_type).json()
    except ValueError:
        before = None
    assert got == before
