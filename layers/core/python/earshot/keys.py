"""API keys: ``sk-es-<32 base62 chars of randomness><6 base62 checksum chars>``.

A key carries 190 random bits and a CRC-32 checksum so typos are rejected before any lookup. Only
its SHA-256 is stored; the secret is shown once, when created.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import zlib

PREFIX = "sk-es-"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 32  # 32 base62 chars = 190 bits
_CHECK_LEN = 6  # base62 of a CRC-32 fits in 6 chars


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def generate_key() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LEN))
    return f"{PREFIX}{body}{_checksum(body)}"


def is_well_formed(key: str) -> bool:
    """True when ``key`` has the shape and a valid checksum (no store lookup)."""
    if not key.startswith(PREFIX) or len(key) != len(PREFIX) + _BODY_LEN + _CHECK_LEN:
        return False
    rest = key[len(PREFIX) :]
    if any(c not in _ALPHABET for c in rest):
        return False
    body, check = rest[:_BODY_LEN], rest[_BODY_LEN:]
    return secrets.compare_digest(_checksum(body), check)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_hint(key: str) -> str:
    """What lists may show of a key: its prefix and last four characters."""
    return f"{PREFIX}...{key[-4:]}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def new_sortable_id(prefix: str) -> str:
    """An id whose text order is its creation order (nanosecond clock, fixed width, then randomness)."""
    return f"{prefix}_{time.time_ns():016x}{secrets.token_hex(4)}"
