"""The commit stage's link to the DCC: a gateway protocol, its HTTP client and the retry policy."""

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
