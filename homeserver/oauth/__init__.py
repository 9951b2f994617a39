"""Sign-in: the Matrix OAuth 2.0 API served by WSPR itself, its sign-in and account pages,
and the JWT sessions behind both it and the legacy /login.

Layers, as in the rest of the server:

- ``homeserver/protocol/oauth.py``: the spec's pure rules (scopes, client metadata,
  redirect URIs, account management actions);
- ``homeserver/oauth/`` (this package): the logic. ``tokens`` (JWT access tokens and
  their keys), ``revocation`` (the revocation list), ``sessions`` (sign-in sessions,
  refresh-token rotation), ``provider`` (the OAuth 2.0 authorisation server, on authlib),
  ``login_flow`` (the sign-in state machine the pages drive, with the extension points
  for second factors and other first factors), ``accounts`` (what the account pages do),
  ``jwt_login`` (``org.matrix.login.jwt``);
- ``homeserver/oauth/rest/``: HTTP. ``endpoints`` (metadata, registration, token,
  revocation), ``pages`` (the sign-in and account pages, server-rendered HTML);
- ``homeserver/storage/sessions.py``: the SQL.
"""
