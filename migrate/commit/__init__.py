"""The commit stage's link to the DCC: a gateway protocol, its HTTP and file-drop clients and
the retry policy."""

from migrate.commit.file_drop import FileDropGateway
from migrate.commit.gateway import (
    Gateway,
    GatewayProtocolError,
    GatewayRejected,
    GatewayUnavailable,
    HttpGateway,
    Outcome,
    Receipt,
    Submission,
)
from migrate.commit.retry import retrying

__all__ = [
    "FileDropGateway",
    "Gateway",
    "GatewayProtocolError",
    "GatewayRejected",
    "GatewayUnavailable",
    "HttpGateway",
    "Outcome",
    "Receipt",
    "Submission",
    "retrying",
]
