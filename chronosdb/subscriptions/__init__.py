"""Subscriptions (InfluxDB 1.x): forward every accepted write of a database and retention
policy, as line protocol, to HTTP or UDP destinations.

Layout: ``definitions`` (validation and the durable store), ``service`` (the engine's write
listener, encoding with ``chronosdb.ext.lpencode``, per-destination bounded queues and sender
threads, the statements). See docs/subscriptions.md.
"""
from chronosdb.subscriptions.definitions import FileSubscriptionStore, SubscriptionDef, SubscriptionStore
from chronosdb.subscriptions.service import Destination, SubscriptionService

__all__ = ["Destination", "FileSubscriptionStore", "SubscriptionDef", "SubscriptionService", "SubscriptionStore"]
