"""Revocations fanned out to the other processes sharing the database, over Redis
pub/sub (txredisapi, as Synapse uses for its replication).

Each process publishes the sessions it revokes on ``revocation.CHANNEL`` and subscribes to
it. Whenever its subscription is (re)established it re-reads the revocation list from the
database, so a revocation published while it was disconnected is not missed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import txredisapi
from twisted.internet import defer, reactor
from twisted.internet.endpoints import HostnameEndpoint

from homeserver.oauth.revocation import CHANNEL, RevocationList

if TYPE_CHECKING:
    from homeserver.config import RedisConfig

logger = logging.getLogger(__name__)


class _Subscriber(txredisapi.SubscriberProtocol):
    fanout: RedisFanout

    def connectionMade(self) -> Any:
        d = defer.maybeDeferred(super().connectionMade)

        def subscribed(_: Any) -> Any:
            sub = self.subscribe(CHANNEL)
            sub.addCallback(lambda _: self.fanout.subscribed())
            return sub

        d.addCallback(subscribed)
        d.addErrback(lambda f: logger.warning("Redis subscription failed: %s", f.value))
        return d

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        self.fanout.revocations.on_redis_message(message)


class RedisFanout:
    def __init__(self, config: RedisConfig, revocations: RevocationList) -> None:
        self.config = config
        self.revocations = revocations
        self._publisher: Any = None
        self._subscriber_factory: Any = None
        self._connector: Any = None
        # Fires each time the subscription is in place (tests wait on it).
        self.ready: defer.Deferred[None] = defer.Deferred()

    def start(self) -> None:
        c = self.config
        self._publisher = txredisapi.lazyConnection(c.host, c.port, dbid=c.dbid, password=c.password, reconnect=True)
        factory = txredisapi.SubscriberFactory()
        factory.password, factory.dbid = c.password, c.dbid
        fanout = self

        class Subscriber(_Subscriber):
            pass

        Subscriber.fanout = fanout
        factory.protocol = Subscriber
        if hasattr(factory, "startConnecting"):  # txredisapi >= 1.6
            factory.startConnecting(HostnameEndpoint(reactor, c.host, c.port))
        else:  # earlier: a ReconnectingClientFactory
            self._connector = reactor.connectTCP(c.host, c.port, factory)
        self._subscriber_factory = factory
        self.revocations.attach_redis(self)

    def publish(self, channel: str, message: str) -> Any:
        return self._publisher.publish(channel, message)

    def subscribed(self) -> None:
        # Anything published while we were not subscribed is in the database.
        d = defer.ensureDeferred(self.revocations.load())
        d.addErrback(lambda f: logger.warning("re-reading the revocation list failed: %s", f.value))
        if not self.ready.called:
            d.addBoth(lambda _: self.ready.callback(None))

    async def stop(self) -> None:
        factory = self._subscriber_factory
        if factory is not None:
            if hasattr(factory, "stopTrying"):
                factory.stopTrying()
            await factory.handler.disconnect()
            if self._connector is not None:
                self._connector.disconnect()
        if self._publisher is not None:
            await self._publisher.disconnect()
