"""Client-API answers compared request by request with a real Synapse
(``tests/support/differential.py``): status, errcode and JSON shape."""
