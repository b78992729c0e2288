"""Deterministic simulation of Raft clusters in one process.

``disk`` (what a node persisted), ``node`` (a RawNode + disk + key-value state machine, i.e. a
driver without I/O), ``scripted`` (a hand-driven cluster for tests and scenario files) and
``cluster`` (the seeded randomized simulator with faults, invariant checks and a client
history checked for linearizability). ``python -m chronosdb.cluster.sim`` runs seeds.
"""
