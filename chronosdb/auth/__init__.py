"""API keys and per-request authorization.

``keys`` holds and verifies the keys (hashed, constant-time); ``authorizer`` turns a request's
credentials into a :class:`Principal` and checks each action against its scope.
"""
from chronosdb.auth.authorizer import (
    ACTIONS,
    ANONYMOUS,
    Authorizer,
    Forbidden,
    Principal,
    Unauthorized,
    credentials_from,
)
from chronosdb.auth.keys import (
    ADMIN_KEY_FILE,
    DATABASE_SCOPES,
    KEY_PREFIX,
    KEYS_FILE,
    SCOPES,
    KeyInfo,
    KeyRequestError,
    KeyStore,
)

__all__ = [
    "ACTIONS", "ANONYMOUS", "Authorizer", "Forbidden", "Principal", "Unauthorized",
    "credentials_from", "ADMIN_KEY_FILE", "DATABASE_SCOPES", "KEY_PREFIX", "KEYS_FILE", "SCOPES",
    "KeyInfo", "KeyRequestError", "KeyStore",
]
