"""The tamper-evident audit log: records sealed into a hash chain (and an HMAC under the
audit key), verified from record 1 to the head the store keeps apart. Pure functions: the
store calls them in its transactions; an exported JSONL file is checked with the same ones.
See chain.py for the format and what each protection does and does not catch."""

from migrate.audit.chain import (
    FIELDS,
    GENESIS,
    AuditFormatError,
    AuditRecord,
    Verification,
    canonical_bytes,
    format_at,
    from_jsonl,
    inputs_text,
    inputs_value,
    now_at,
    seal,
    seal_many,
    sealed_with,
    to_jsonl,
    valid_head,
    verify,
)

__all__ = [
    "FIELDS",
    "GENESIS",
    "AuditFormatError",
    "AuditRecord",
    "Verification",
    "canonical_bytes",
    "format_at",
    "from_jsonl",
    "inputs_text",
    "inputs_value",
    "now_at",
    "seal",
    "seal_many",
    "sealed_with",
    "to_jsonl",
    "valid_head",
    "verify",
]
