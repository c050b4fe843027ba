"""Run records streamed to Parquet while a run goes: never the whole run in memory.

Each table buffers at most ``flush_rows`` rows, then writes them as one row group of its file
(pyarrow's ParquetWriter), so a run of millions of trades holds one buffer per table. Money
columns are decimal128(38, 0): exact integers of base units, as the ledger counts them (an
int64 overflows at 9.2 tokens of 18 decimals). ``read`` gives a table back for reports.

The tables of one run folder:
- ``trades``: every settled trade (or deal): step, time, market, buyer, seller, price, qty, tx;
- ``steps``: per step and market: trades, volume, prices (mean, min, max, VWAP), the competitive
  equilibrium of that step's schedule (quantity, price interval), surplus achieved and possible,
  allocative efficiency, Smith's alpha, utilization, units offered and demanded, active sellers,
  Gini of sellers' earnings;
- ``agents``: every ``agent_every`` steps, per agent: group, role, balance, units traded,
  turnover, surplus, reputation;
- ``schedule``: every trader's market, side, limit and units per step (with ``shocks.json``,
  what a report rebuilds any step's supply and demand curves from);
- ``deals.jsonl``: every deal that ended (whole-deal markets), as its buyer recorded it;
- ``messages`` (``metrics.messages: true``): every delivered message's header, for ``agora trace``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MONEY = pa.decimal128(38, 0)

SCHEMAS: dict[str, pa.Schema] = {
    "trades": pa.schema(
        [
            ("step", pa.int32()),
            ("t", pa.float64()),
            ("market", pa.string()),
            ("buyer", pa.string()),
            ("seller", pa.string()),
            ("price", MONEY),
            ("qty", pa.int64()),
            ("tx", pa.string()),
            ("deal_id", pa.string()),
        ]
    ),
    "steps": pa.schema(
        [
            ("step", pa.int32()),
            ("t", pa.float64()),
            ("market", pa.string()),
            ("trades", pa.int64()),
            ("volume", pa.int64()),
            ("mean_price", pa.float64()),
            ("min_price", pa.float64()),
            ("max_price", pa.float64()),
            ("vwap", pa.float64()),
            ("eq_qty", pa.int64()),
            ("eq_low", pa.float64()),
            ("eq_high", pa.float64()),
            ("surplus", pa.float64()),
            ("max_surplus", pa.float64()),
            ("efficiency", pa.float64()),
            ("alpha", pa.float64()),
            ("utilization", pa.float64()),
            ("offered", pa.int64()),
            ("demanded", pa.int64()),
            ("active_sellers", pa.int64()),
            ("gini", pa.float64()),
        ]
    ),
    "agents": pa.schema(
        [
            ("step", pa.int32()),
            ("agent", pa.string()),
            ("address", pa.string()),
            ("group", pa.string()),
            ("role", pa.string()),
            ("balance", MONEY),
            ("traded", pa.int64()),
            ("turnover", MONEY),
            ("surplus", pa.float64()),
            ("reputation", pa.float64()),
        ]
    ),
    "schedule": pa.schema(
        [
            ("market", pa.string()),
            ("agent", pa.string()),
            ("address", pa.string()),
            ("group", pa.string()),
            ("side", pa.string()),
            ("limit", pa.int64()),
            ("units", pa.int64()),
        ]
    ),
    "messages": pa.schema(
        [
            ("t", pa.float64()),
            ("sender", pa.string()),
            ("target", pa.string()),
            ("type", pa.string()),
            ("session", pa.string()),
            ("nonce", pa.int64()),
        ]
    ),
}


class Table:
    """One Parquet file written a row group at a time."""

    def __init__(self, path: Path, schema: pa.Schema, flush_rows: int) -> None:
        self.path, self.schema, self.flush_rows = path, schema, flush_rows
        self._columns: list[list[Any]] = [[] for _ in schema.names]
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def append(self, row: tuple[Any, ...]) -> None:
        for column, value in zip(self._columns, row, strict=False):
            column.append(value)
        self.rows += 1
        if len(self._columns[0]) >= self.flush_rows:
            self.flush()

    def extend(self, rows: list[tuple[Any, ...]]) -> None:
        """Many rows at once, column by column (a step's trades)."""
        for start in range(0, len(rows), self.flush_rows):
            chunk = rows[start : start + self.flush_rows]
            for column, values in zip(self._columns, zip(*chunk, strict=False), strict=False):
                column.extend(values)
            self.rows += len(chunk)
            if len(self._columns[0]) >= self.flush_rows:
                self.flush()

    def flush(self) -> None:
        if not self._columns[0]:
            return
        batch = pa.table([pa.array(c, type=f.type) for c, f in zip(self._columns, self.schema, strict=False)], schema=self.schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema)
        self._writer.write_table(batch)
        self._columns = [[] for _ in self.schema.names]
        del batch
        pa.default_memory_pool().release_unused()  # hand the row group's buffers back: a long run stays flat

    def close(self) -> None:
        self.flush()
        if self._writer is None:  # an empty table is still a file a report can read
            pq.write_table(self.schema.empty_table(), self.path)
        else:
            self._writer.close()


class Recorder:
    """The tables of one run, in ``out``."""

    def __init__(self, out: Path, flush_rows: int = 65_536, messages: bool = False) -> None:
        out.mkdir(parents=True, exist_ok=True)
        names = ["trades", "steps", "agents", "schedule"] + (["messages"] if messages else [])
        self.tables = {n: Table(out / f"{n}.parquet", SCHEMAS[n], flush_rows) for n in names}
        self._deals = (out / "deals.jsonl").open("w")

    def deal(self, record: dict[str, Any]) -> None:
        """One ended deal as the buyer saw it (contract, job, bill, receipts, the contract's
        states), a JSON line in ``deals.jsonl``: what ``agora trace`` tells."""
        import json

        self._deals.write(json.dumps(record, separators=(",", ":")) + "\n")

    def __getitem__(self, name: str) -> Table:
        return self.tables[name]

    def close(self) -> None:
        for table in self.tables.values():
            table.close()
        self._deals.close()


def read(out: Path | str, name: str) -> pa.Table:
    path = Path(out) / f"{name}.parquet"
    return pq.read_table(path) if path.exists() else SCHEMAS[name].empty_table()
