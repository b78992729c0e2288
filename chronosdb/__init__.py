"""ChronosDB: a scalable datastore for metrics, events and real-time analytics."""

__version__ = "0.1.0"
