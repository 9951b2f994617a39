"""The one parser of ids' server parts (appendices, "Server Name")."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.protocol import auth_rules, identifiers, signing
from homeserver.util import ids


class ServerNameOfTests(unittest.TestCase):
    def test_everything_after_the_first_colon(self) -> None:
        for identifier, server in (
            ("@alice:example.org", "example.org"),
            ("@alice:example.org:8448", "example.org:8448"),
            ("!room:[::1]:8448", "[::1]:8448"),
            ("$opaque:example.org", "example.org"),
            ("#alias:example.org", "example.org"),
            ("@a:b:c", "b:c"),
        ):
            self.assertEqual(identifiers.server_name_of(identifier), server, identifier)

    def test_none(self) -> None:
        # v3+ event ids and v12 room ids have no server part.
        for identifier in ("$3rHbGjO9a77sIvrS0L13PShA6d3CYe9Obgk9_DTd-lc", "!abc", "", "@a:"):
            self.assertEqual(identifiers.server_name_of(identifier), "", identifier)
        with self.assertRaises(ValueError):
            signing.domain_of("@a:")
        self.assertEqual(signing.domain_of("@a:b.org:8448"), "b.org:8448")

    def test_one_function(self) -> None:
        # util.ids and the auth rules use this one (issue 10, item 4).
        self.assertIs(ids.server_of, identifiers.server_name_of)
        self.assertIs(auth_rules.is_valid_server_name, identifiers.is_valid_server_name)
        self.assertEqual(ids.split_id("@a:b.org:8448", "@"), ("a", "b.org:8448"))

    def test_user_ids(self) -> None:
        self.assertTrue(identifiers.is_valid_user_id("@a:example.org:8448"))
        self.assertFalse(identifiers.is_valid_user_id("@a:exa mple.org"))
        self.assertFalse(identifiers.is_valid_user_id("@a:" + "x" * 260))
        # Power level `users` keys: Synapse wants no more than sigil and colon.
        self.assertTrue(identifiers.looks_like_user_id("@a:exa mple.org"))
        self.assertFalse(identifiers.looks_like_user_id("a:b"))
        self.assertFalse(identifiers.looks_like_user_id(5))
