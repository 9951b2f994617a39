"""Server-server federation. See README.md in this directory for the map.

``federation.service.Federation`` builds every part and is injected by ``homeserver/app.py``
as ``hs.federation`` (the homeserver sees it as ``homeserver.federation_api.FederationAPI``).
"""
