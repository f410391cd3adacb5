"""From the --gateway the engineer gives to gateways the commit stage can use: an http(s)
URL is the DCC's HTTP interface, anything else a file-drop exchange folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from migrate.commit.gateway import Gateway, HttpGateway
from migrate.errors import ConfigError


def gateway_factory(target: str, *, timeout_s: float = 30.0) -> tuple[Callable[[], Gateway], str]:
    """A maker of gateways (one per worker) and the target as shown in logs and audit
    records (a URL without user or password)."""
    parts = urlsplit(target)
    if parts.scheme in {"http", "https"}:
        if not parts.hostname:
            raise ConfigError(None, f"not a gateway URL: {target!r}", key="gateway")
        port = f":{parts.port}" if parts.port else ""
        shown = f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
        return (lambda: HttpGateway(target, read_timeout=timeout_s)), shown
    if parts.scheme and len(parts.scheme) > 1:
        raise ConfigError(
            None, f"gateway {target!r}: use an http(s) URL or a folder", key="gateway"
        )
    folder = Path(target)
    if not folder.is_dir():
        raise ConfigError(
            None, f"gateway {target!r} is neither an http(s) URL nor a folder", key="gateway"
        )
    from migrate.commit.file_drop import FileDropGateway

    return (lambda: FileDropGateway(folder, timeout_s=timeout_s)), str(folder.resolve())
