"""Deterministic test tenants full of realistic (and realistically messy) contacts.

Everything comes from ``random.Random(seed)``: the same arguments always give the same names,
numbers, folders and ids, so a failing scenario can be replayed.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .tenant import Folder, Item, Mailbox, Tenant

GIVEN = [
    "Anna", "Jürgen", "Sören", "Björn", "Jörg", "Günther", "Käthe", "Maximilian", "Sophie",
    "Lukas", "Marie", "Felix", "Lea", "Jonas", "Emma", "Paul", "Mia", "Leon", "Hannah", "Till",
    "Grete", "Ömer", "Ayşe", "Mehmet", "Zoë", "Chloé", "Renée", "José", "François", "Éric",
    "Łukasz", "Małgorzata", "Dušan", "Ana", "Søren", "Åsa", "Niamh", "Siobhán", "Giuseppe",
    "Nguyễn", "Ólafur", "Žofie", "Heike", "Uwe", "Dörte", "Joachim", "Brigitte", "Wolfgang",
    "Sabine", "Thomas", "Priya", "Wei", "Yuki", "Kwame", "Olga", "Ingrid", "Ludwig", "Fritz",
]
SURNAMES = [
    "Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Meyer", "Wagner", "Becker", "Schulz",
    "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
    "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt",
    "Werner", "Krause", "Meier", "Lehmann", "Groß", "Köhler", "Straße", "Süß", "Öztürk",
    "Yılmaz", "Nowak", "Kowalski", "Dvořák", "Novák", "García", "Müller-Lüdenscheidt",
    "von Bülow", "de la Cruz", "O'Brien", "Ñúñez", "Lefèvre", "Çelik", "Åberg", "Østergaard",
    "Smith", "Johnson", "Nakamura", "Chen", "Kim", "Papadopoulos", "Rossi", "van der Berg",
]
COMPANIES = [
    "Müller & Söhne GmbH", "Bäckerei Groß KG", "Stadtwerke München GmbH", "Schäfer IT-Service",
    "Autohaus Köhler", "Ärztehaus am Markt", "Öko-Energie eG", "Rechtsanwälte Weiß & Partner",
    "Contoso Ltd.", "Fabrikam, Inc.", "Northwind Traders", "Tailspin Toys", "Adatum Corp.",
    "Société Générale", "Nestlé Deutschland AG", "Café Süß", "Elektro Lange e.K.",
    "Ingenieurbüro Straße", "Hausverwaltung Krüger", "Zahnarztpraxis Dr. Çelik", "",
]
DEPARTMENTS = ["Vertrieb", "Einkauf", "Buchhaltung", "IT", "Geschäftsführung", "Personal",
               "Kundendienst", "Technik", "Marketing", "Logistik", "Sales", "R&D", ""]
TITLES = ["Geschäftsführer", "Leiterin Vertrieb", "Sachbearbeiter", "Teamleiterin",
          "Techniker", "Prokurist", "Assistentin der GL", "Key Account Manager",
          "Head of IT", "Werkstudent", "Empfang", "Dr. med.", ""]
CATEGORIES = ["Kunden", "Lieferanten", "Familie", "Freunde", "VIP", "Handwerker", "Ärzte"]
FOLDER_NAMES = ["Kunden", "Lieferanten", "Privat", "Behörden", "Ärzte & Praxen", "Vereine",
                "Projekt Ω", "Archiv"]
EMOJI = ["🎉", "☎️", "⭐", "🍺", "🚀"]
JUNK = ["n/a", "tbd", "-", "?", "siehe Zentrale", "0", "keine"]
# Weighted number types: common ones often, hidden ones (Graph-invisible) now and then.
TYPE_WEIGHTS = [
    ("business", 30), ("mobile", 25), ("home", 10), ("business2", 6), ("home2", 3),
    ("business_fax", 6), ("home_fax", 2), ("other_fax", 1), ("other", 3), ("pager", 1),
    ("car", 1), ("assistant", 2), ("company_main", 3), ("callback", 1), ("radio", 1),
    ("isdn", 1), ("telex", 1), ("tty", 1), ("primary", 2),
]
AREA_CODES = ["30", "40", "69", "89", "221", "211", "711", "351", "341", "511", "911", "6221"]
MOBILE_PREFIXES = ["151", "160", "170", "171", "172", "175", "176", "177", "1512", "1590"]


def random_number(rng: random.Random, mobile: bool = False) -> str:
    """A phone number in one of the many ways people type them."""
    if rng.random() < 0.04:
        return rng.choice(JUNK)
    if mobile or rng.random() < 0.15:
        pre = rng.choice(MOBILE_PREFIXES)
        sub = "".join(rng.choices("0123456789", k=rng.choice((7, 8))))
        return rng.choice([
            f"0{pre} {sub}", f"+49 {pre} {sub}", f"+49 ({pre}) {sub[:3]} {sub[3:]}",
            f"0{pre}/{sub}", f"0{pre}-{sub}", f"0049{pre}{sub}", f"0{pre}{sub}",
        ])
    if rng.random() < 0.12:
        return rng.choice([
            f"+1 (212) 555-{rng.randrange(100, 200):04d}",
            f"+44 20 7946 {rng.randrange(0, 1000):04d}",
            f"+43 1 {rng.randrange(100000, 999999)}",
            f"+41 44 {rng.randrange(100, 999)} {rng.randrange(10, 99)} {rng.randrange(10, 99)}",
            f"+33 1 {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)} "
            f"{rng.randrange(10, 99)}",
            f"001 415 555 {rng.randrange(1000, 9999)}",
        ])
    area = rng.choice(AREA_CODES)
    sub = "".join(rng.choices("0123456789", k=rng.choice((5, 6, 7))))
    ext = str(rng.randrange(0, 999))
    return rng.choice([
        f"+49 {area} {sub}-{ext}", f"+49 {area} {sub}-0", f"0{area} / {sub[:2]} {sub[2:4]} "
        f"{sub[4:]}", f"(0{area}) {sub}", f"0049 {area} {sub}", f"0{area} {sub[:4]}-{sub[4:]}",
        f"+49 (0) {area} {sub}", f"0{area}{sub}", f"+49{area}{sub}", f"0{area}-{sub}",
        f"+49 {area} {sub}", f"0{area} {sub}", f" 0{area} {sub} ", f"0{area}/{sub}-{ext}",
    ])


def random_contact_fields(rng: random.Random, domain_hint: str = "example.com"
                          ) -> dict[str, Any]:
    given = rng.choice(GIVEN) if rng.random() > 0.05 else ""
    surname = rng.choice(SURNAMES) if rng.random() > 0.03 else ""
    company = rng.choice(COMPANIES)
    display = ""
    r = rng.random()
    if r < 0.1:
        display = f"{surname}, {given}".strip(", ")
    elif r < 0.13 and company:
        display = f"{given} {surname} ({company})".replace("  ", " ").strip()
    elif r < 0.15:
        display = f"{given} {surname} {rng.choice(EMOJI)}".strip()
    numbers: dict[str, str] = {}
    if rng.random() > 0.08:  # some contacts have no number at all
        count = rng.choices([1, 2, 3, 4, 6], weights=[35, 30, 18, 10, 7])[0]
        types = [t for t, _ in TYPE_WEIGHTS]
        weights = [w for _, w in TYPE_WEIGHTS]
        for _ in range(count):
            t = rng.choices(types, weights=weights)[0]
            # People fill "Business" before "Business 2": a lone second slot would read back
            # from Graph as the first one (compacted lists), see graph.contact_json.
            first = {"business2": "business", "home2": "home"}.get(t)
            if first and first not in numbers:
                t = first
            if t not in numbers:
                numbers[t] = random_number(rng, mobile=t == "mobile")
    emails: list[str] = []
    local = _ascii(f"{given}.{surname}".strip(".")).lower() or "info"
    dom = _ascii(company.split()[0]).lower() + ".de" if company else domain_hint
    for _ in range(rng.choices([0, 1, 2, 3], weights=[15, 60, 20, 5])[0]):
        candidate = rng.choice([f"{local}@{dom}", f"{local[:1]}.{local.split('.')[-1]}@{dom}",
                                f"{local}@gmx.de", f"{local}{rng.randrange(70, 99)}@web.de",
                                f"info@{dom}"])
        if candidate not in emails:
            emails.append(candidate)
    cats = rng.sample(CATEGORIES, k=rng.choices([0, 1, 2], weights=[60, 30, 10])[0])
    return dict(given_name=given, surname=surname, display_name=display, company=company,
                department=rng.choice(DEPARTMENTS) if company else "",
                job_title=rng.choice(TITLES) if company else "", emails=emails,
                numbers=numbers, categories=cats)


def _ascii(text: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe",
                           "Ü": "Ue", " ": "", "'": "", "&": "", ",": "", ".": "."})
    text = text.translate(table)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(c for c in text if c.isalnum() or c in ".-")


DEFAULT_MAILBOXES = ["anna.berg", "jürgen.schäfer", "sophie.martin", "lukas.weiss",
                     "marie.koenig", "felix.braun", "lea.hoffmann", "jonas.wagner"]


def generate_tenant(seed: int = 1, mailboxes: int = 3, contacts_per_mailbox: int = 200,
                    subfolders: int = 2, distribution_lists: int = 2,
                    tenant_id: str | None = None, domain: str = "contoso.de",
                    client_id: str | None = None, secret: str | None = None,
                    roles: Sequence[str] = ("full_access_as_app", "Contacts.Read"),
                    subfolder_share: float = 0.25) -> Tenant:
    """A tenant with one app and ``mailboxes`` mailboxes full of contacts.

    Per mailbox: ``subfolders`` folders below Contacts (every second one with a nested child),
    ``subfolder_share`` of the contacts spread over them, ``distribution_lists`` lists in
    Contacts. Mailbox addresses: anna.berg@…, juergen.schaefer@…, then user04@… and so on.
    """
    rng = random.Random(seed)
    tenant = Tenant(tenant_id=tenant_id, domain=domain, seed=seed)
    tenant.add_app(client_id=client_id, secret=secret, roles=roles)
    for m in range(mailboxes):
        local = DEFAULT_MAILBOXES[m] if m < len(DEFAULT_MAILBOXES) else f"user{m + 1:02d}"
        mbx = tenant.add_mailbox(f"{_ascii(local).lower()}@{domain}",
                                 display_name=local.replace(".", " ").title())
        folders: list[Folder] = []
        for i in range(subfolders):
            f = mbx.add_folder(FOLDER_NAMES[i % len(FOLDER_NAMES)]
                               + ("" if i < len(FOLDER_NAMES) else f" {i}"))
            folders.append(f)
            if i % 2 == 1:
                folders.append(mbx.add_folder(f"{f.name} – Archiv", parent=f))
        for _ in range(contacts_per_mailbox):
            target = rng.choice(folders) if folders and rng.random() < subfolder_share else None
            mbx.add_contact(**random_contact_fields(rng), folder=target)
        for d in range(distribution_lists):
            people = rng.sample(mbx.all_items(), k=min(3, len(mbx.all_items())))
            members = [(p.display_name, p.emails[0]) for p in people if p.emails] or \
                [("Team", f"team@{domain}")]
            mbx.add_distribution_list(f"Verteiler {['Vertrieb', 'Technik', 'Familie'][d % 3]}"
                                      + (f" {d}" if d >= 3 else ""), members=members)
    return tenant


@dataclass
class Mutation:
    """What :func:`mutate` did, per mailbox address (lower-case)."""

    added: dict[str, list[Item]] = field(default_factory=dict)
    updated: dict[str, list[Item]] = field(default_factory=dict)
    deleted: dict[str, list[str]] = field(default_factory=dict)  # EWS ids

    @property
    def counts(self) -> tuple[int, int, int]:
        return (sum(map(len, self.added.values())), sum(map(len, self.updated.values())),
                sum(map(len, self.deleted.values())))


def mutate(tenant: Tenant, seed: int, adds: int = 5, updates: int = 5, deletes: int = 5,
           mailboxes: Sequence[str] | None = None) -> Mutation:
    """Random adds/updates/deletes of contacts (not lists) in each mailbox; reproducible."""
    rng = random.Random(seed)
    result = Mutation()
    with tenant.lock:
        boxes: list[Mailbox] = ([tenant.mailbox(s) for s in mailboxes] if mailboxes
                                else list(tenant.mailboxes.values()))
        for mbx in boxes:
            key = mbx.key
            contacts = [i for i in mbx.all_items() if i.kind == "contact"]
            doomed = rng.sample(contacts, k=min(deletes, len(contacts)))
            rest = [c for c in contacts if c not in doomed]
            changed = rng.sample(rest, k=min(updates, len(rest)))
            result.deleted[key] = [c.ews_id for c in doomed]
            for c in doomed:
                mbx.delete_contact(c.ews_id)
            result.updated[key] = []
            for c in changed:
                what = rng.choice(["number", "name", "company", "email", "number"])
                if what == "number":
                    nums = dict(c.numbers)
                    nums[rng.choice(["business", "mobile", "tty", "business_fax"])] = \
                        random_number(rng)
                    mbx.update_contact(c.ews_id, numbers=nums)
                elif what == "name":
                    g = rng.choice(GIVEN)
                    mbx.update_contact(c.ews_id, given_name=g,
                                       display_name=f"{g} {c.surname}".strip())
                elif what == "company":
                    mbx.update_contact(c.ews_id, company=rng.choice(COMPANIES))
                else:
                    mbx.update_contact(c.ews_id, emails=[f"neu{rng.randrange(1000)}@example.org"])
                result.updated[key].append(c)
            folders = mbx.contact_folders()
            result.added[key] = [
                mbx.add_contact(**random_contact_fields(rng), folder=rng.choice(folders))
                for _ in range(adds)]
    return result
