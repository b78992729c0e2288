"""Our Raft: a pure, I/O-free core (``core.RawNode``) in the style of etcd-io/raft.

``types`` holds the values that cross the boundary (entries, messages, Ready); ``log`` the
in-memory log; ``progress`` the leader's view of each follower; ``core`` the state machine.
The driver (persisting, sending, applying) lives elsewhere; see docs/raft.md.
"""

from chronosdb.cluster.raft.types import *  # noqa: F401,F403
from chronosdb.cluster.raft.core import Config, RawNode  # noqa: E402,F401
