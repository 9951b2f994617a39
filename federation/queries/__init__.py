"""Federation queries: ``endpoints`` (what other servers ask us), ``hierarchy`` (the
space hierarchy endpoint), ``outbound`` (what we ask other servers for our users)."""
