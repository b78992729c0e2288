"""``/api/cluster/*``: the meta cluster over HTTP.

* ``GET /api/cluster/status`` (admin key) → ``{"node": RaftNode.status(), "transport":
  Transport.stats(), "rpc", "http"}``; 404 on a single-node server.
* ``POST /api/cluster/propose`` and ``POST /api/cluster/join``: internal calls between members
  (``chronosdb.cluster.service``), authenticated by the shared cluster secret in the
  ``X-ChronosDB-Cluster-Secret`` header, not by an API key.
"""
from __future__ import annotations

from chronosdb.cluster.service import check_secret
from chronosdb.model.errors import NotFound
from chronosdb.server.http.messages import HttpError, Response


def _cluster(server):
    cluster = getattr(server, "cluster", None)
    if cluster is None:
        raise NotFound("this server is a single node, not a cluster member (start it with --node-id)")
    return cluster


async def handle_cluster(server, req) -> Response:
    rest = req.path[len("/api/cluster"):].strip("/")
    if rest == "status":
        if req.method != "GET":
            raise HttpError(405, f"{req.method} is not allowed on {req.path}")
        principal = server.authenticate(req)
        server.authorizer.require(principal, "admin", None)
        return Response.json(_cluster(server).status())
    if rest in ("propose", "join"):
        if req.method != "POST":
            raise HttpError(405, f"{req.method} is not allowed on {req.path}")
        cluster = _cluster(server)
        if not check_secret(req.headers, server.config.cluster_secret):
            raise HttpError(403, "internal cluster call without the right X-ChronosDB-Cluster-Secret")
        handler = cluster.handle_propose if rest == "propose" else cluster.handle_join
        status, doc = await handler(req.body)
        return Response.json(doc, status=status)
    raise NotFound(f"not found: {req.path}")
