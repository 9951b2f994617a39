"""Push: push rules, what they make of each new event, and the push gateways.

Split by what each part does, as Synapse's ``synapse/push/`` package is:

| module | what |
| --- | --- |
| ``rules.py`` | ``hs.push_rules``: each user's rules (storage-backed, cached) and the /pushrules CRUD |
| ``bulk_evaluator.py`` | judges a batch of persisted events by every local recipient's rules |
| ``push_actions.py`` | ``hs.push_actions``: the persisted-events listener; batched writes of notifications and read positions, unread/highlight counts in memory, receipts, the badge count |
| ``notifications.py`` | ``hs.notifications``: GET /notifications |
| ``pusher_pool.py`` | ``hs.pushers``: /pushers and /pushers/set, the running pushers, which go with their device |
| ``http_pusher.py`` | one pusher: ordered delivery to its push gateway, retries with backoff, badge updates |
| ``notification_context.py`` | the sender's display name and the room's name in a push |
| ``config.py`` | the ``push:`` section of wspr.yaml |

The path of a notification: ``persister.py`` commits events → ``push_actions``
(listener) → ``bulk_evaluator`` → one write for the batch → ``hs.pushers`` delivers to
the gateways in the background (each pusher reads what it has left to send from
storage); /sync reads the counts from ``push_actions``.
"""
