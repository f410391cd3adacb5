"""What every reader test checks while reading: string batches, ordinals rising in file order,
and the row numbers a person finds in the file. (tests/ is on pytest's pythonpath.)"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from migrate.extract import ExtractReader


def read_all(reader: ExtractReader) -> tuple[list[dict[str, str | None]], list[int]]:
    """Every data row, and its row number as found in the file (after the batches are done)."""
    rows: list[dict[str, str | None]] = []
    ordinals: list[np.ndarray] = []
    for batch, batch_ordinals in reader.batches():
        assert batch.schema.names == reader.columns
        assert all(field.type == pa.string() for field in batch.schema)
        assert len(batch_ordinals) == batch.num_rows
        rows.extend(batch.to_pylist())
        ordinals.append(batch_ordinals)
    if not ordinals:
        return rows, []
    every = np.concatenate(ordinals)
    assert np.all(np.diff(every) > 0), "ordinals must rise in file order"
    return rows, reader.source_rows(every).tolist()
