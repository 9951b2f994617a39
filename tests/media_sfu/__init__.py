"""Tests of the SFU.

The SFU runs asyncio (aiortc) and uses autobahn's asyncio flavour. Under trial, Twisted's
plugin scan imports autobahn's Twisted plugins, which pin txaio to Twisted for the whole
process (only on a fresh install, before twisted/plugins/dropin.cache exists). In
production the SFU is its own process and this never happens; in the test process we
release the pin before the SFU modules are imported.
"""

import txaio

if getattr(txaio, "_explicit_framework", None) == "twisted":
    txaio._explicit_framework = None  # type: ignore[attr-defined]
