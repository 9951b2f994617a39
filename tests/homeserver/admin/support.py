"""A WSPR with a server admin (made through shared-secret registration, as
register_new_matrix_user does), for the admin API's tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from tests.support.synapse import register_with_shared_secret
from tests.support.wspr import MatrixClient, RunningHomeServer, start_homeserver

SECRET = "admin-api-secret"
V1 = "/_synapse/admin/v1"
V2 = "/_synapse/admin/v2"
V3 = "/_synapse/admin/v3"
AUDIT = "/_wspr/admin/v1/audit_log"


def q(value: str) -> str:
    return quote(value, safe="")


async def register_admin(base_url: str, secret: str, localpart: str = "root", password: str = "root-pw") -> MatrixClient:
    body = await deferToThread(register_with_shared_secret, base_url, secret, localpart, password, True)
    return MatrixClient(base_url, body["access_token"], body["user_id"], body["device_id"])


async def admin_server(test: unittest.TestCase, **overrides: Any) -> tuple[RunningHomeServer, MatrixClient]:
    server = await start_homeserver(test, registration_shared_secret=SECRET, **overrides)
    return server, await register_admin(server.base_url, SECRET)


async def call(client: MatrixClient, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await client.raw(method, path, body)
