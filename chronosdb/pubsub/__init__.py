"""The in-process publish/subscribe bus and the streaming queries built on it.

* ``matcher``   — which points of a written batch a subscription wants (vectorized, per batch).
* ``broker``    — the ``Bus``: the engine's write listener, subscriptions indexed by
  (database, measurement), bounded per-subscriber queues with a drop-or-disconnect policy.
* ``streaming`` — a streaming SELECT: validation, live rows from published batches, window
  tracking and resume cursors. Pure: the HTTP/WebSocket handler does the I/O.

Imports point down: this package sees the engine only through its write-listener hook and the
query layer only through ``statements.execute`` (history, resume, closed windows).
See docs/streaming.md.
"""
from chronosdb.pubsub.broker import Bus, Subscription, SubscriptionClosed
from chronosdb.pubsub.matcher import SubscriptionFilter

__all__ = ["Bus", "Subscription", "SubscriptionClosed", "SubscriptionFilter"]
