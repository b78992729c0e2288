"""Who is asking (authentication) and may they (authorization), once per request.

``credentials_from`` is a pure parser: request headers and query parameters in, the key out.
``Authorizer.authenticate`` turns the key into a :class:`Principal` through the key store, and
``Authorizer.require`` checks one action against one database. Nothing here does I/O: the store
answers from memory, so the whole check is a SHA-256, a dict probe and a few comparisons.

There is no verification cache: the store's lookup is already that cheap, and a cache would be
one more place where a revoked key could linger.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Mapping

from chronosdb.auth.keys import ADMIN, READ, READWRITE, WRITE, KeyInfo, KeyStore
from chronosdb.model.errors import ChronosError

ACTIONS = ("read", "write", "admin")
_ALLOWED_SCOPES = {"read": (READ, READWRITE), "write": (WRITE, READWRITE), "admin": ()}


class Unauthorized(ChronosError):
    """No usable credentials, or a key that is not (or no longer) valid: HTTP 401."""

    status = 401
    # RFC 9110 asks a 401 to carry a challenge; the server sends this as WWW-Authenticate.
    challenge = 'Bearer realm="chronosdb"'


class Forbidden(ChronosError):
    """A valid key asked for something its scope does not cover: HTTP 403."""

    status = 403

    def __init__(self, message: str, key_id: str = "", action: str = "", database: str | None = None):
        super().__init__(message)
        self.key_id, self.action, self.database = key_id, action, database


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    key_id: str
    database: str | None    # the key's database; None for admin keys (and for --no-auth)
    scope: str
    is_admin: bool

    @classmethod
    def from_key(cls, info: KeyInfo) -> "Principal":
        return cls(info.key_id, info.database, info.scope, info.is_admin)

    def can(self, action: str, database: str | None) -> bool:
        """May this caller do ``action`` (read, write, admin) on ``database``?

        Admins may do anything. Everyone else may read or write only their own database, as
        their scope allows, and never perform admin actions (DDL, key management).
        """
        allowed = _ALLOWED_SCOPES.get(action)
        if allowed is None:
            raise ValueError(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}")
        if self.is_admin:
            return True
        return database is not None and database == self.database and self.scope in allowed


# The principal of a server started with --no-auth: every check passes.
ANONYMOUS = Principal(key_id="anonymous", database=None, scope=ADMIN, is_admin=True)


def _malformed(why: str) -> Unauthorized:
    return Unauthorized(f"malformed Authorization header: {why}")


def _single_token(value: str, scheme: str) -> str:
    token = value.strip()
    if not token:
        raise _malformed(f"{scheme} scheme without a key")
    if any(c.isspace() for c in token):
        raise _malformed(f"{scheme} key contains whitespace")
    return token


def _basic_password(value: str) -> str:
    """The password of ``Basic base64(user:password)``; the user name is ignored.

    A decoded value without a colon is taken as the key itself (some clients send just that).
    """
    encoded = value.strip()
    if not encoded:
        raise _malformed("Basic scheme without credentials")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _malformed("Basic credentials are not base64 of UTF-8 'user:key'") from None
    _, colon, password = decoded.partition(":")
    key = password if colon else decoded
    if not key:
        raise _malformed("Basic credentials carry no key (expected 'user:key' or ':key')")
    return key


def credentials_from(headers: Mapping[str, str], params: Mapping[str, str]) -> str | None:
    """The API key a request carries, or None if it carries none.

    ``headers`` has lower-case names. In order: ``Authorization: Token KEY``, ``Bearer KEY``,
    ``Basic base64(user:KEY)``; otherwise the InfluxDB 1.x ``p`` query parameter (``u`` is
    ignored). A present but unparseable Authorization header raises :class:`Unauthorized`
    rather than falling back to ``p``: the client meant to authenticate and got it wrong.
    """
    header = headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        kind = scheme.lower()
        if kind in ("token", "bearer"):
            return _single_token(value, scheme)
        if kind == "basic":
            return _basic_password(value)
        if not scheme:
            raise _malformed("empty header")
        raise _malformed(f"unsupported scheme {scheme[:32]!r} (use Token, Bearer or Basic)")
    password = params.get("p")
    return password if password else None


class Authorizer:
    """Authentication and authorization for every request of one server."""

    def __init__(self, keys: KeyStore | None, enabled: bool = True):
        if enabled and keys is None:
            raise ValueError("an enabled Authorizer needs a KeyStore")
        self._keys = keys
        self._enabled = enabled

    @property
    def enabled(self) -> bool:
        return self._enabled

    def authenticate(self, headers: Mapping[str, str], params: Mapping[str, str]) -> Principal:
        if not self._enabled:
            return ANONYMOUS
        key = credentials_from(headers, params)
        if key is None:
            raise Unauthorized("unable to parse authentication credentials")
        info = self._keys.verify(key)
        if info is None:
            raise Unauthorized("authorization failed")
        return Principal.from_key(info)

    def require(self, principal: Principal, action: str, database: str | None) -> None:
        """Return if ``principal`` may do ``action`` on ``database``, else raise Forbidden."""
        if not self._enabled or principal.can(action, database):
            return
        who = f"key {principal.key_id}"
        if action == "admin":
            what = "perform admin actions (create or drop databases, manage keys)"
        elif database is None:
            what = f"{action} without naming a database"
        elif action == "read":
            what = f'read from database "{database}"'
        else:
            what = f'write to database "{database}"'
        raise Forbidden(f"{who} may not {what}", principal.key_id, action, database)
