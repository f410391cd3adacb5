"""The DCC's post-migration inventory, fetched through the gateway into a JSON Lines file that
`migrate reconcile --inventory` reads (through the dcc_inventory mapping)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from migrate.commit.gateway import Gateway
from migrate.whole_file import write_whole


def export_inventory(gateway: Gateway, path: Path) -> int:
    """Stream the inventory into `path`, one device a line, written whole or not at all (a
    read that fails midway leaves no file that looks complete). Returns the devices written."""
    count = 0

    def lines() -> Iterator[bytes]:
        nonlocal count
        for device in gateway.inventory():
            count += 1
            yield (json.dumps(device, ensure_ascii=False, separators=(",", ":")) + "\n").encode()

    write_whole(path, lines())
    return count
