"""The audit log's HMAC key, from the environment."""

from __future__ import annotations

import os
import re

from migrate.errors import ConfigError

ENV = "MIGRATE_AUDIT_KEY"
MIN_BYTES = 32  # RFC 2104: a key shorter than the hash's output weakens the MAC

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def audit_key() -> bytes | None:
    """The key from MIGRATE_AUDIT_KEY, or None when it is unset (records then get no mac).

    The value is HEX, at least 64 digits (32 bytes), surrounding whitespace ignored; make one
    with `python -c "import secrets; print(secrets.token_hex(32))"`. Hex, not plain text: a
    key should be random bytes, not a passphrase, and one reading only means a hex key can
    never be silently taken as its ASCII text, a different key under which every mac fails.

    A value that is set but empty, not hex or too short is a ConfigError rather than None:
    sealing without a mac by mistake would weaken the log silently. No message, log line or
    exception chain ever carries the value.
    """
    value = os.environ.get(ENV)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ConfigError(None, f"{ENV} is set but empty: unset it, or give a hex key")
    if not _HEX.fullmatch(value):
        raise ConfigError(None, f"{ENV} is not hex (an even number of digits 0-9, a-f)")
    key = bytes.fromhex(value)
    if len(key) < MIN_BYTES:
        raise ConfigError(None, f"{ENV} is too short: give at least {2 * MIN_BYTES} hex digits")
    return key
