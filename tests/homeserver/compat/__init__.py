"""Compatibility trials: WSPR's client-server API against clients and input nobody here controls.

- test_spec_fuzz: schemathesis over the spec's own OpenAPI files (needs ``pip install schemathesis``
  and ../shared/matrix-spec or WSPR_MATRIX_SPEC); WSPR_FUZZ_EXAMPLES sets examples per operation.
- test_nasty_inputs: deterministic garbage, odd ids, concurrency; SQLite and PostgreSQL.
- test_js_sdk: matrix-js-sdk driving two clients; install it first with
  ``npm ci --prefix tests/homeserver/compat/js``.
"""
