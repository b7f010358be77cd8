"""Network faults and bad data, through the fake Exchange Online, for EWS and for Graph.

Each case: a healthy first run, hand-typed and CSV entries beside the synced ones, the user
edits Outlook, then one sync under the fault, then a healthy sync (``lab.scenario``). The row
passes if the faulty run ended with its documented exit code and one clear line per failure,
every phonebook is in its old or its fully updated state, hand-typed and CSV entries are
untouched, and the next healthy run makes every phonebook equal its mailbox.

Suite size: 3 mailboxes of 25 contacts, retry back-offs shrunk to 20 ms, server back-offs of
20-50 ms (one EWS HTTP 429 costs a second: the source waits at least that long on a 429).
``full``: 5 mailboxes of 400 contacts, the production back-offs, longer storms and outages.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from urllib.parse import unquote

from ucware_contactsync.testing import Tenant, generate_tenant
from ucware_contactsync.testing.server import RequestRecord

from .common import Case, Outcome
from .lab import ROLES, Fault, Lab, Run, scenario, short_timeouts, small_tenant

APIS = ("ews", "graph")
ONPREM = "onprem"  # EWS against an on-premises Exchange: office365=false, NTLM service account
WITH_ONPREM = (*APIS, ONPREM)
VICTIM = "juergen.schaefer@contoso.de"  # the mailbox a per-mailbox fault hits


def _case(name: str, fault: str, make: object, apis: tuple[str, ...] = APIS) -> list[Case]:
    """One case per API; ``make(api, full) -> Fault`` (on premises: ``api`` is "ews")."""
    out = []
    for api in apis:
        wire = "ews" if api == ONPREM else api

        def run(db_url: str, workdir: Path, full: bool, wire: str = wire,
                on_premises: bool = api == ONPREM) -> Outcome:
            return scenario(db_url, workdir, full, wire, make(wire, full),  # type: ignore[operator]
                            on_premises=on_premises)
        label = "ews on premises, NTLM" if api == ONPREM else api
        out.append(Case(f"{name}-{api}", f"{fault} ({label})", run))
    return out


def _requests(lab: Lab, api: str | None = None) -> list[RequestRecord]:
    """The requests of the run under fault (of one API), without NTLM handshake legs (401s
    before EWS reads the request, so without an operation)."""
    return [r for r in lab.fault_requests if (api is None or r.api == api)
            and not (r.api == "ews" and r.operation is None and r.status == 401)]


# 1. throttling storm -------------------------------------------------------------------------

def throttling_storm(api: str, full: bool) -> Fault:
    storm = 10**6 if full else 10**4  # "for a while": the whole run

    def arm(lab: Lab) -> None:
        f = lab.fx.faults
        if api == "ews":
            # Half of all requests: ErrorServerBusy with BackOffMilliseconds; of the others a
            # few bare HTTP 429 (exchangelib's own policies do not retry those).
            f.throttle_ews(count=storm, backoff_ms=1000 if full else 50, every=2)
            f.throttle_ews_http429(count=3 if full else 1, retry_after=1, every=5)
        else:
            f.throttle_graph(count=storm, retry_after_s=1 if full else 0.05, every=2)

    def check(lab: Lab, run: Run) -> list[str]:
        reqs = [r for r in _requests(lab, api) if r.round_trip]  # a $batch counts once
        hit = [r for r in reqs if r.fault]
        if len(hit) < len(reqs) // 2:  # every 2nd (Graph batches: a handful of round trips)
            return [f"only {len(hit)} of {len(reqs)} requests were throttled"]
        kinds = {r.fault for r in hit}
        if api == "ews" and kinds != {"throttle_ews", "throttle_ews_http429"}:
            return [f"throttled by {sorted(kinds)} only"]
        return []

    return Fault(arm, codes=(0,), check=check)


def parallel_storm(api: str, full: bool) -> Fault:
    """The storm with eight mailboxes read at once (max_workers 8), a full read: every
    session of exchangelib's pool in use when one thread is told to back off. exchangelib's
    own pool shrinking deadlocked there (the run hung for good, holding the run lock)."""
    def arm(lab: Lab) -> None:
        lab.must("config", "set", "max_workers", "8")
        lab.fx.faults.throttle_ews(count=10**6, backoff_ms=1000 if full else 20, every=2)

    def tenant(api: str, full: bool) -> Tenant:
        return generate_tenant(seed=9, mailboxes=8, contacts_per_mailbox=100 if full else 12,
                               subfolders=1, distribution_lists=0, roles=ROLES[api])

    return Fault(arm, codes=(0,), argv=("--full",), tenant=tenant, hang_s=60.0 * (5 if full
                                                                                  else 1))


# 2. token endpoint down for part of a run ---------------------------------------------------

# The provider renews a token 2 s before it ends (requests-oauthlib rounds the issue time to
# the second): a 2 s token is renewed at the first use 0-0.5 s after it was issued, a 4 s one
# after about 2 s. Responses held back a little stretch the run (~1 s in the suite).
CHOOSE_TOKENS = {"ews": 2, "graph": 1}  # api=auto fetches Graph's token (and EWS's) to choose


def _stretch(lab: Lab, api: str, full: bool) -> None:
    """Hold every answer of the API back a little (not the token endpoint's). Graph sends
    most requests of a run in a few $batch round trips: each of those is held longer."""
    lab.fx.faults.slow_responses(10**6, (0.13 if api == "ews" else 0.25) * (8 if full else 1),
                                 api=api)


def _renewals(lab: Lab, api: str) -> int:
    """Tokens fetched during the run beyond those fetched to choose the API (the source goes
    on with the chosen API's token until it must be renewed)."""
    return max(0, len(_requests(lab, "token")) - CHOOSE_TOKENS[api])


def token_outage(api: str, full: bool) -> Fault:
    def arm(lab: Lab) -> None:
        # The tokens fetched to choose the API live 2 s, so the first renewal (early in the
        # reads) meets the outage; tokens after the outage live 5 s.
        lab.fx.faults.token_lifetime(5)
        lab.fx.faults.token_lifetime(2, count=CHOOSE_TOKENS[api])
        lab.fx.faults.token_outage(after=CHOOSE_TOKENS[api], seconds=5.0 if full else 0.4)
        _stretch(lab, api, full)

    def check(lab: Lab, run: Run) -> list[str]:
        down = [r for r in _requests(lab, "token") if r.status != 200]
        return [] if down else ["the token endpoint never failed during the run"]

    return Fault(arm, codes=(0, 1), may_fail=True, failure_text="token endpoint", check=check,
                 note=lambda lab, run: f"{len(run.failed)} mailboxes failed")


# 3. tokens expiring every few seconds during a longer run -------------------------------------

def token_expiry(api: str, full: bool) -> Fault:
    def arm(lab: Lab) -> None:
        lab.fx.faults.token_lifetime(4 if full else 2)
        _stretch(lab, api, full)

    def check(lab: Lab, run: Run) -> list[str]:
        refused = [r for r in _requests(lab) if r.status == 401]
        problems = []
        renewed = _renewals(lab, api)
        if renewed < (2 if full else 1):
            problems.append(f"{renewed} tokens renewed during a {run.seconds:.1f} s run")
        if refused:
            problems.append(f"{len(refused)} requests went out with an expired token")
        return problems

    def note(lab: Lab, run: Run) -> str:
        return f"{_renewals(lab, api)} tokens renewed in {run.seconds:.1f} s"

    return Fault(arm, codes=(0,), check=check, note=note)


# 4. one mailbox failing on every request -----------------------------------------------------

def failing_mailbox(api: str, full: bool) -> Fault:
    return Fault(lambda lab: lab.fx.faults.fail_mailbox(VICTIM, "http500"), codes=(1,),
                 must_fail=(VICTIM,), failure_text="retries")


# 5. responses slower than the client's timeout ------------------------------------------------

SLOW_S = 8.0  # how long the slow answers are held back (the read timeout fires long before;
#              retries of the timed-out requests and a loaded machine stay far below it)


def slow_responses(api: str, full: bool) -> Fault:
    timeout = 0.5

    def arm(lab: Lab) -> None:
        # Graph batches its requests: fewer round trips, so every 2nd instead of every 4th.
        lab.fx.faults.slow_responses(count=3, seconds=SLOW_S, api=api,
                                     every=4 if api == "ews" else 2)

    def check(lab: Lab, run: Run) -> list[str]:
        held = lab.fx.faults.hits["slow_responses"]
        if held < 3:
            return [f"only {held} responses were held back"]
        if run.seconds >= SLOW_S:
            # Waiting the slow answers out would take SLOW_S each: the timeout did not fire.
            return [f"the run took {run.seconds:.1f} s: the {timeout} s read timeout did "
                    "not fire"]
        return []

    return Fault(arm, codes=(0,), during=partial(short_timeouts, timeout), check=check,
                 note=lambda lab, run: f"3 answers held {SLOW_S:.0f} s, timeout {timeout} s, "
                                       f"run {run.seconds:.1f} s")


# 6. connections dropped mid-response ---------------------------------------------------------

def dropped_connections(api: str, full: bool) -> Fault:
    def arm(lab: Lab) -> None:
        lab.fx.faults.drop_connection(count=12 if full else 4, api=api, every=3)

    def check(lab: Lab, run: Run) -> list[str]:
        n = sum(1 for r in _requests(lab) if r.fault == "drop_connection")
        return [] if n else ["no connection was dropped"]

    return Fault(arm, codes=(0,), check=check)


# 7. malformed XML / JSON ------------------------------------------------------------------------

def malformed(api: str, full: bool) -> Fault:
    def arm(lab: Lab) -> None:
        lab.fx.faults.malformed_response(count=12 if full else 4, api=api, every=2)

    def check(lab: Lab, run: Run) -> list[str]:
        n = sum(1 for r in _requests(lab) if r.fault == "malformed_response")
        return [] if n else ["no response was malformed"]

    return Fault(arm, codes=(0,), check=check)


# 8. bad data: 500 numbers, megabytes of notes, control characters and emoji -------------------

# Names as people (and broken tools) type them. Expected in the phonebook: the same text
# with control characters other than tab and newline dropped (docs/reliability.md).
ODD_NAMES = [
    ("Zoë 🎉", "Öztürk\u200d👩‍💻", "Bäckerei 🥐 Süß"),
    ("Tab\there", "Line\nbreak", "Null\x00Byte GmbH"),
    ("Bell\x07", "Esc\x1b[31mRed", "DEL\x7f C1\x85 End"),
    ("𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "中文名字", "Ünïcödé ☎️ 📞"),
]
NOTES_MB = 2
# An EWS item shape that brings the body: asked by name, or a base shape that includes it.
ITEM_BODY = re.compile(r"item:(Text)?Body|<m:ItemShape>\s*<t:BaseShape>(Default|AllProperties)")


def bad_data(api: str, full: bool) -> Fault:
    def arm(lab: Lab) -> None:
        mbx = lab.tenant.mailbox("anna.berg@contoso.de")
        regular = {t: f"+49 89 1000{i:03d}" for i, t in enumerate(
            ("business", "business2", "mobile", "home", "home2", "business_fax", "home_fax",
             "other_fax", "other", "pager", "car", "assistant", "company_main", "callback",
             "radio", "isdn", "telex", "tty", "primary"))}
        extra = [("business" if i % 2 else "home", f"030 {500000 + i}") for i in range(481)]
        lab.extra["many"] = mbx.add_contact(given_name="Viele", surname="Nummern",
                                            numbers=regular, extra_numbers=extra)
        notes = ("Notiz über den Kunden. " * 46000)[: NOTES_MB * 1024 * 1024]
        lab.extra["notes"] = mbx.add_contact(given_name="Lange", surname="Notizen",
                                             numbers={"business": "089 555 0101"}, notes=notes)
        lab.extra["odd"] = [mbx.add_contact(given_name=g, surname=s, company=c,
                                            numbers={"mobile": f"0171 77700{i}"})
                            for i, (g, s, c) in enumerate(ODD_NAMES)]

    def check(lab: Lab, run: Run) -> list[str]:
        problems = []
        big = [r for r in _requests(lab) if r.response_bytes > 512 * 1024]
        if big:
            problems.append(f"{len(big)} responses over 512 KiB: the notes were requested")
        asked = [r for r in _requests(lab) if ITEM_BODY.search(r.body)
                 or "personalnotes" in unquote(r.query).lower()
                 or (r.api == "graph" and r.operation in ("contacts", "contact")
                     and "$select" not in unquote(r.query) and "token=" not in r.query)]
        if asked:
            problems.append(f"{len(asked)} requests asked for the notes or all properties")
        return problems

    return Fault(arm, codes=(0,), mutate=False, check=check)


# 9. Graph: throttled sub-requests inside a 200 batch; a 410 on the folder delta link ----------

def throttled_subrequests(api: str, full: bool) -> Fault:
    """Every 3rd sub-request of every batch: 429 with its own Retry-After, the batch 200."""
    def arm(lab: Lab) -> None:
        lab.fx.faults.throttle_graph_subrequests(count=10**6, retry_after_s=1 if full else 0.05,
                                                 every=3)

    def check(lab: Lab, run: Run) -> list[str]:
        subs = [r for r in _requests(lab, "graph") if not r.round_trip]
        hit = [r for r in subs if r.fault == "throttle_graph_subrequests"]
        batches = {r.request_id: r.status for r in _requests(lab, "graph") if r.request_id}
        if not hit:
            return ["no sub-request was throttled"]
        if any(batches.get(r.batch or "") != 200 for r in hit):
            return ["a throttled sub-request came in a batch that did not answer 200"]
        return []

    return Fault(arm, codes=(0,), check=check)


def folder_delta_gone(api: str, full: bool) -> Fault:
    """Every mailbox's folder delta link answers 410: the folders are listed again, the
    contact delta links stay in use (no full read)."""
    def arm(lab: Lab) -> None:
        for smtp in lab.tenant.mailboxes:
            lab.fx.faults.expire_folder_delta(smtp)

    def check(lab: Lab, run: Run) -> list[str]:
        reqs = _requests(lab, "graph")
        gone = [r for r in reqs if r.operation == "folderDelta" and r.status == 410]
        if len(gone) < len(lab.tenant.mailboxes):
            return [f"only {len(gone)} folder delta links answered 410"]
        if [r for r in reqs if r.operation == "delta" and r.status == 410]:
            return ["a contact delta link answered 410"]
        return []

    return Fault(arm, codes=(0,), check=check)


CASES: list[Case] = [
    *_case("throttle-storm", "throttling storm: every 2nd request throttled", throttling_storm,
           apis=WITH_ONPREM),
    *_case("parallel-storm", "throttling storm, 8 mailboxes at once, full read",
           parallel_storm, apis=("ews", ONPREM)),
    *_case("token-outage", "token endpoint down during the run", token_outage),
    *_case("token-expiry", "tokens expire every 2 s (--full: 4 s) during the run",
           token_expiry),
    *_case("mailbox-http500", "one mailbox fails on every request (HTTP 500)", failing_mailbox,
           apis=WITH_ONPREM),
    *_case("read-timeout", "responses slower than the read timeout", slow_responses,
           apis=WITH_ONPREM),
    *_case("dropped-connection", "connections dropped mid-response", dropped_connections,
           apis=WITH_ONPREM),
    *_case("malformed", "malformed responses (XML / JSON cut in half)", malformed,
           apis=WITH_ONPREM),
    *_case("bad-data", "500 numbers, 2 MB notes, control chars and emoji", bad_data,
           apis=WITH_ONPREM),
    *_case("batch-429", "every 3rd sub-request of a 200 $batch throttled",
           throttled_subrequests, apis=("graph",)),
    *_case("folder-delta-410", "410 on every folder delta link", folder_delta_gone,
           apis=("graph",)),
]

__all__ = ["CASES", "small_tenant"]
