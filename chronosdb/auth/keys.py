"""API keys: creation, hashed storage, constant-time verification.

A key is ``cdb_`` followed by 43 URL-safe base64 characters (32 bytes from ``secrets``, 256
bits). Its plaintext exists only in the value returned by :meth:`KeyStore.create` (and, for the
first admin key, in the 0600 ``admin.key`` file); the store keeps SHA-256 of the key. A slow KDF
(bcrypt, scrypt) exists to protect low-entropy passwords from guessing; a 256-bit random key
cannot be guessed, so one SHA-256 is enough and keeps verification cheap on every request.

The store is one CBOR file, rewritten whole and atomically on every change (changes are rare)::

    {"version": 1,
     "keys": [{"id": "3f9c0a1b2c4d",          12 hex chars, public, names the key in logs
               "hash": h'…32 bytes…',          SHA-256 of the UTF-8 plaintext key
               "database": "db1" | null,       null = admin key
               "scope": "read" | "write" | "readwrite" | "admin",
               "created_ns": 1700000000000000000,
               "description": "grafana"}, …]}

Lookups go by hash (a dict probe on SHA-256 of whatever the client sent), then the stored
digest is compared with ``hmac.compare_digest``; a miss compares against a dummy digest, so every
verification does the same work and nothing about which key ids exist reaches the client.

Readers never take the lock: the live state is an immutable snapshot that writers replace in
one reference assignment, after the new file is durable.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import os
import secrets
import threading
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import cbor2

from chronosdb.model.errors import BadRequest, CorruptionError
from chronosdb.storage import filenames

KEY_PREFIX = "cdb_"
KEY_RANDOM_BYTES = 32           # 256 bits; the brief's floor is 128
KEY_ID_HEX_CHARS = 12           # 48 bits: enough to tell keys apart, not a secret
MAX_KEY_CHARS = 1024            # anything longer is not one of ours; do not hash megabytes

READ, WRITE, READWRITE, ADMIN = "read", "write", "readwrite", "admin"
DATABASE_SCOPES = (READ, WRITE, READWRITE)
SCOPES = DATABASE_SCOPES + (ADMIN,)

# File names (suggested home: chronosdb/storage/filenames.py, which this module does not own).
KEYS_FILE = "keys.cbor"
ADMIN_KEY_FILE = "admin.key"

FORMAT_VERSION = 1
SECRET_FILE_MODE = 0o600

# Compared against on a miss so that a hit and a miss cost the same.
_DUMMY_DIGEST = hashlib.sha256(b"chronosdb: no such key").digest()


class KeyRequestError(BadRequest, ValueError):
    """A key request the caller got wrong (bad scope, bad database): HTTP 400, and a ValueError."""


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never the key, never its hash."""

    key_id: str
    database: str | None    # None: an admin key, valid for every database
    scope: str              # read | write | readwrite for database keys, admin for admin keys
    created_ns: int         # Unix time in nanoseconds
    description: str = ""

    @property
    def is_admin(self) -> bool:
        return self.database is None

    def to_dict(self) -> dict:
        return {"id": self.key_id, "database": self.database, "scope": self.scope,
                "created_ns": self.created_ns, "description": self.description}


@dataclass(frozen=True)
class _StoredKey:
    info: KeyInfo
    digest: bytes


class _Snapshot:
    """One immutable state of the store: readers hold a reference, writers build a new one."""

    __slots__ = ("by_digest", "by_id")

    def __init__(self, keys: list[_StoredKey]):
        self.by_digest: Mapping[bytes, _StoredKey] = MappingProxyType({k.digest: k for k in keys})
        self.by_id: Mapping[str, _StoredKey] = MappingProxyType({k.info.key_id: k for k in keys})


def digest_of(key: str) -> bytes:
    # surrogatepass: a header can carry any str; encoding must never raise on the request path.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def validate_scope(database: str | None, scope: str) -> None:
    """Admin keys (database None) take scope ``admin``; database keys read, write or readwrite."""
    if database is None:
        if scope != ADMIN:
            raise KeyRequestError(
                f"invalid scope {scope!r} for an admin key (no database): admin keys take scope 'admin'")
        return
    if not isinstance(database, str) or not database or any(ord(c) < 0x20 for c in database):
        raise KeyRequestError(f"invalid database name {database!r} for a key")
    if scope not in DATABASE_SCOPES:
        raise KeyRequestError(
            f"invalid scope {scope!r} for a key on database {database!r}: "
            f"expected one of {', '.join(DATABASE_SCOPES)}")


class KeyStore:
    """The API keys of one server (or, in a cluster, the local copy of the meta store's keys)."""

    def __init__(self, path: str, *, now_ns: Callable[[], int] = time.time_ns):
        self._path = path
        self._now_ns = now_ns
        self._write_lock = threading.Lock()    # serialises writers only
        tmp = filenames.tmp(path)
        if os.path.exists(tmp):                # a rewrite that never reached its rename
            os.unlink(tmp)
        self._snapshot = _Snapshot(self._load() if os.path.exists(path) else [])

    @property
    def path(self) -> str:
        return self._path

    # -- reading ------------------------------------------------------------------------------
    def verify(self, key: str) -> KeyInfo | None:
        """The key's info if ``key`` is a live key, else None. Same work for hits and misses."""
        snap = self._snapshot
        if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
            hmac.compare_digest(_DUMMY_DIGEST, _DUMMY_DIGEST)
            return None
        digest = digest_of(key)
        stored = snap.by_digest.get(digest)
        ok = hmac.compare_digest(stored.digest if stored is not None else _DUMMY_DIGEST, digest)
        return stored.info if (stored is not None and ok) else None

    def get(self, key_id: str) -> KeyInfo | None:
        stored = self._snapshot.by_id.get(key_id)
        return stored.info if stored is not None else None

    def list(self, database: str | None = None) -> list[KeyInfo]:
        """All keys (``database`` None) or the keys of one database, oldest first."""
        infos = [k.info for k in self._snapshot.by_id.values()
                 if database is None or k.info.database == database]
        return sorted(infos, key=lambda i: (i.created_ns, i.key_id))

    def has_admin_key(self) -> bool:
        return any(k.info.is_admin for k in self._snapshot.by_id.values())

    # -- writing ------------------------------------------------------------------------------
    def create(self, database: str | None, scope: str, description: str = "") -> tuple[KeyInfo, str]:
        """Create a key. The plaintext key is returned here and never again."""
        validate_scope(database, scope)
        if not isinstance(description, str):
            raise KeyRequestError("key description must be a string")
        with self._write_lock:
            return self._create_locked(database, scope, description)

    def _create_locked(self, database, scope, description) -> tuple[KeyInfo, str]:
        snap = self._snapshot
        key_id = secrets.token_hex(KEY_ID_HEX_CHARS // 2)
        while key_id in snap.by_id:
            key_id = secrets.token_hex(KEY_ID_HEX_CHARS // 2)
        key = new_key()
        info = KeyInfo(key_id, database, scope, self._now_ns(), description)
        self._commit(list(snap.by_id.values()) + [_StoredKey(info, digest_of(key))])
        return info, key

    def insert_hashed(self, key_id: str, digest: bytes, database: str | None, scope: str,
                      created_ns: int, description: str = "") -> bool:
        """Add a key known only by its id and SHA-256 (a cluster replicates the hash, never the
        secret). Idempotent: the same id with the same hash again is a no-op (False); True when
        added. A different key under the same id, or the same hash under another id, is an error.
        """
        validate_scope(database, scope)
        if not isinstance(digest, bytes) or len(digest) != hashlib.sha256().digest_size:
            raise KeyRequestError("key hash must be 32 bytes (SHA-256)")
        with self._write_lock:
            snap = self._snapshot
            existing = snap.by_id.get(key_id)
            if existing is not None:
                if existing.digest != digest:
                    raise KeyRequestError(f"key id {key_id} already exists with another hash")
                return False
            if digest in snap.by_digest:
                raise KeyRequestError(f"the hash of key {key_id} is already stored under another id")
            info = KeyInfo(key_id, database, scope, created_ns, description)
            self._commit(list(snap.by_id.values()) + [_StoredKey(info, digest)])
            return True

    def revoke(self, key_id: str) -> bool:
        """Revoke one key; it fails verification as soon as this returns. False if unknown.

        The last admin key cannot be revoked: the server would have no one left to manage it.
        """
        with self._write_lock:
            snap = self._snapshot
            stored = snap.by_id.get(key_id)
            if stored is None:
                return False
            if stored.info.is_admin and sum(k.info.is_admin for k in snap.by_id.values()) == 1:
                raise KeyRequestError(
                    f"refusing to revoke {key_id}: it is the last admin key (create another first)")
            self._commit([k for k in snap.by_id.values() if k.info.key_id != key_id])
            return True

    def drop_database(self, database: str) -> int:
        """Revoke every key of ``database`` (called when it is dropped). Returns how many."""
        with self._write_lock:
            keep = [k for k in self._snapshot.by_id.values() if k.info.database != database]
            dropped = len(self._snapshot.by_id) - len(keep)
            if dropped:
                self._commit(keep)
            return dropped

    def ensure_admin_key(self, admin_key_path: str) -> str | None:
        """On first start, create the admin key, write it to ``admin_key_path`` (0600) and
        return it for the server to print once. Later (an admin key exists) return None."""
        with self._write_lock:
            if any(k.info.is_admin for k in self._snapshot.by_id.values()):
                return None
            key = new_key()
            # The file first, then the store: a crash in between leaves a file whose key does
            # not verify, and the next start replaces it. The other order could leave an admin
            # key that nobody knows.
            write_secret_file(admin_key_path, (key + "\n").encode("ascii"))
            snap = self._snapshot
            key_id = secrets.token_hex(KEY_ID_HEX_CHARS // 2)
            while key_id in snap.by_id:
                key_id = secrets.token_hex(KEY_ID_HEX_CHARS // 2)
            info = KeyInfo(key_id, None, ADMIN, self._now_ns(), "created on first start")
            self._commit(list(snap.by_id.values()) + [_StoredKey(info, digest_of(key))])
            return key

    # -- persistence --------------------------------------------------------------------------
    def _commit(self, keys: list[_StoredKey]) -> None:
        """Make ``keys`` durable, then visible. Caller holds the write lock."""
        doc = {"version": FORMAT_VERSION,
               "keys": [{"id": k.info.key_id, "hash": k.digest, "database": k.info.database,
                         "scope": k.info.scope, "created_ns": k.info.created_ns,
                         "description": k.info.description} for k in keys]}
        # atomic_write opens its temp file with open(..., "wb"), which keeps the mode of a file
        # that already exists. Creating the temp file 0600 first means the hashes are never
        # readable by others, not even between create and rename.
        fd = os.open(filenames.tmp(self._path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     SECRET_FILE_MODE)
        os.fchmod(fd, SECRET_FILE_MODE)        # an older temp file may have had looser bits
        os.close(fd)
        filenames.atomic_write(self._path, cbor2.dumps(doc))
        self._snapshot = _Snapshot(keys)

    def _load(self) -> list[_StoredKey]:
        with open(self._path, "rb") as f:
            data = f.read()
        buf = io.BytesIO(data)
        try:
            doc = cbor2.CBORDecoder(buf).decode()
        except Exception as e:  # cbor2 raises several types for bad input
            raise CorruptionError(self._path, buf.tell(), f"undecodable CBOR: {e}") from None
        if buf.tell() != len(data):
            raise CorruptionError(self._path, buf.tell(), "trailing bytes after the key document")
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
            raise CorruptionError(self._path, 0, "not a version-1 key store document")
        entries = doc.get("keys")
        if not isinstance(entries, list):
            raise CorruptionError(self._path, 0, "key store has no key list")
        keys: list[_StoredKey] = []
        for i, e in enumerate(entries):
            try:
                info = KeyInfo(e["id"], e["database"], e["scope"], e["created_ns"],
                               e.get("description", ""))
                digest = e["hash"]
                if not (isinstance(info.key_id, str) and isinstance(digest, bytes)
                        and len(digest) == hashlib.sha256().digest_size
                        and isinstance(info.created_ns, int)):
                    raise ValueError("field types")
                validate_scope(info.database, info.scope)
            except (KeyError, TypeError, ValueError) as err:
                raise CorruptionError(self._path, 0, f"key entry {i} is malformed ({err})") from None
            keys.append(_StoredKey(info, digest))
        if len({k.info.key_id for k in keys}) != len(keys):
            raise CorruptionError(self._path, 0, "duplicate key ids")
        return keys


def write_secret_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` as a 0600 file, durably and atomically.

    The temp file is created by ``os.open`` with mode 0600 and O_EXCL, so the secret is never in
    a file others can read, not for a moment, and never in a file someone else pre-created.
    """
    tmp = filenames.tmp(path)
    if os.path.lexists(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, SECRET_FILE_MODE)
    try:
        os.fchmod(fd, SECRET_FILE_MODE)    # umask can only remove bits; this pins the rest
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    filenames.fsync_dir(os.path.dirname(path) or ".")
