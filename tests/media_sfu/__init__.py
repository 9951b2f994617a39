"""Tests of the SFU.

The SFU runs asyncio (aiortc) and uses autobahn's asyncio flavour; the rest of the test
process uses autobahn on Twisted. tests/support/txaio_framework.py explains how both live
in one process: collection leaves txaio on Twisted, and the SFU tests switch it to asyncio
while they run (``asyncio_helper.run``)."""

from tests.support.txaio_framework import load_both

load_both()
