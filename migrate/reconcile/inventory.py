"""The DCC's post-migration inventory, fetched through the gateway into a JSON Lines file that
`migrate reconcile --inventory` reads (through the dcc_inventory mapping)."""

from __future__ import annotations

import json
from pathlib import Path

from migrate.commit.gateway import Gateway


def export_inventory(gateway: Gateway, path: Path) -> int:
    """Stream the inventory into `path`, one device a line, written whole or not at all (a
    read that fails midway leaves no file that looks complete). Returns the devices written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with scratch.open("w", encoding="utf-8", newline="\n") as handle:
            for device in gateway.inventory():
                handle.write(json.dumps(device, ensure_ascii=False, separators=(",", ":")))
                handle.write("\n")
                count += 1
        scratch.replace(path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    return count
