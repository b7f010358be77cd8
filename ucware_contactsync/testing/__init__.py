"""A local fake Exchange Online (Entra token endpoint + EWS + Graph) for tests, demo, benchmarks.

Real HTTPS on 127.0.0.1 with a throw-away CA; real exchangelib and real ``requests`` talk to it.

    from ucware_contactsync.testing import Tenant, FakeExchange, generate_tenant
    tenant = generate_tenant(seed=1, mailboxes=3, contacts_per_mailbox=200)
    with FakeExchange(tenant) as fx:
        ...  # fx.login_url, fx.graph_url, fx.ews_url, fx.ca_file, fx.faults, fx.requests

Id rule the sync relies on: Graph id == EWS id with ``+`` -> ``-`` and ``/`` -> ``_`` (same bytes,
base64url, padding kept). See :mod:`ucware_contactsync.testing.tenant`.
"""

from __future__ import annotations

from .faults import Faults
from .generator import Mutation, generate_tenant, mutate, random_contact_fields, random_number
from .httpd import RequestRecord
from .server import FakeExchange
from .tenant import (
    MAPI_TAGS,
    VISIBLE_MAPI_TAGS,
    App,
    Folder,
    Item,
    Mailbox,
    Member,
    Tenant,
    ews_to_graph_id,
    graph_to_ews_id,
)

__all__ = [
    "MAPI_TAGS",
    "VISIBLE_MAPI_TAGS",
    "App",
    "FakeExchange",
    "Faults",
    "Folder",
    "Item",
    "Mailbox",
    "Member",
    "Mutation",
    "RequestRecord",
    "Tenant",
    "ews_to_graph_id",
    "generate_tenant",
    "graph_to_ews_id",
    "mutate",
    "random_contact_fields",
    "random_number",
]
