"""``/api/keys``: create, list and revoke API keys (admin only).

* ``POST /api/keys`` with ``{"database": "db", "scope": "read|write|readwrite", "description": ""}``
  → 201 ``{"id", "key", "database", "scope"}``: the only time the key itself is shown.
  ``{"admin": true}`` creates another admin key.
* ``GET /api/keys[?database=db]`` → ``{"keys": [{"id", "database", "scope", "created", "description"}]}``
* ``DELETE /api/keys/{id}`` → 204, or 404 when there is no such key.

Create and revoke go through ``server.meta_writer`` (the key store directly on a single node,
a Raft proposal in a cluster); listing reads this node's key store.
"""
from __future__ import annotations

import orjson

from chronosdb.model.errors import BadRequest, NotFound
from chronosdb.server.http.messages import HttpError, Response


def _info(k) -> dict:
    return {"id": k.key_id, "database": k.database, "scope": k.scope,
            "created": k.created_ns, "description": k.description}


async def handle_keys(server, req) -> Response:
    principal = server.authenticate(req)
    server.authorizer.require(principal, "admin", None)
    store = server.keys
    rest = req.path[len("/api/keys"):].strip("/")
    if req.method == "GET" and not rest:
        db = req.params.get("database") or None
        return Response.json({"keys": [_info(k) for k in store.list(db)]})
    if req.method == "POST" and not rest:
        try:
            doc = orjson.loads(req.body or b"{}")
        except orjson.JSONDecodeError as e:
            raise BadRequest(f"request body is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise BadRequest("request body must be a JSON object")
        if doc.get("admin") is True:
            db, scope = None, "admin"
        else:
            db, scope = doc.get("database"), doc.get("scope")
            if not isinstance(db, str) or not db:
                raise BadRequest('"database" is required (or "admin": true)')
            server.engine.catalog.database(db)  # 404 for an unknown database
            if scope not in ("read", "write", "readwrite"):
                raise BadRequest('"scope" must be "read", "write" or "readwrite"')
        desc = doc.get("description", "")
        if not isinstance(desc, str):
            raise BadRequest('"description" must be a string')
        try:
            info, key = await server.run_blocking(server.meta_writer.create_key, db, scope, desc)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        server.on_keys_changed()
        return Response.json({**_info(info), "key": key}, status=201)
    if req.method == "DELETE" and rest:
        try:
            revoked = await server.run_blocking(server.meta_writer.revoke_key, rest)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        if not revoked:
            raise NotFound(f'key not found: "{rest}"')
        server.on_keys_changed()
        return Response.empty(204)
    raise HttpError(405, f"{req.method} is not allowed on {req.path}")
