"""Federation of rooms: receiving and validating PDUs (``ingest``), membership
handshakes (``membership``), history (``history``) and their endpoints (``endpoints``).
Built by ``federation.service.Federation``."""
