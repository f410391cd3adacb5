"""The floor under `migrate commit`: the same requests sent to the same simulator with no
store, no states, no audit log, no retries: read the payloads, POST them in chunks, poll the
outcomes until none is pending. What commit adds on top of this is its own cost.

    python bench/commit_baseline_http.py STORE_URL BATCH GATEWAY_URL CHUNK
"""

from __future__ import annotations

import argparse
import json
import time

import httpx
from sqlalchemy import create_engine, text


def main(store_url: str, batch: str, gateway: str, chunk: int) -> None:
    engine = create_engine(store_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT idempotency_key, fingerprint, installation_id, supplier_mpid, payload"
                " FROM requests WHERE batch = :b ORDER BY planned_date, idempotency_key"
            ),
            {"b": batch},
        ).all()
    engine.dispose()
    settled = 0
    with httpx.Client(base_url=gateway, timeout=60) as client:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            body = {
                "requests": [
                    {
                        "idempotency_key": key,
                        "fingerprint": fingerprint,
                        "installation_id": installation,
                        "supplier_mpid": supplier,
                        "payload": json.loads(payload),
                    }
                    for key, fingerprint, installation, supplier, payload in part
                ]
            }
            client.post("/v1/requests", json=body).raise_for_status()
            keys = [row[0] for row in part]
            while keys:
                answer = client.post("/v1/outcomes", json={"keys": keys}).json()["outcomes"]
                keys = [o["idempotency_key"] for o in answer if o["state"] == "PENDING"]
                settled += len(answer) - len(keys)
                if keys:
                    time.sleep(0.05)
    print(json.dumps({"sent": len(rows), "settled": settled}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store_url", help="the store holding the staged batch")
    parser.add_argument("batch", help="the batch whose requests are sent")
    parser.add_argument("gateway_url", help="the DCC simulator")
    parser.add_argument("chunk", type=int, help="requests per POST")
    args = parser.parse_args()
    main(args.store_url, args.batch, args.gateway_url, args.chunk)
