"""EDUs, both ways: ``inbound`` (from transactions other servers send us) and
``outbound`` (our users' typing, receipts and presence, to the servers that share a
room with them)."""
