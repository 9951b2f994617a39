from federation.sender.queue import FederationSender

__all__ = ["FederationSender"]
