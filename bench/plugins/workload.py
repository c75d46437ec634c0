"""The benchmark workload: N deterministic, seeded records of ten fields, as Arrow or as dicts.

This module lives in the plugin folder on purpose: a sandboxed plugin sees only its own
folder, so the two bench plugins import it as a sibling module. The harness, the pyarrow
and dlt baselines and the Singer tap import the same file, so every candidate moves the
same values. It needs pyarrow and nothing else.

The values are drawn column by column with ``pyarrow.compute`` (``pc.random`` seeded per
block and column), the way an Arrow-native source hands over columns at C speed. The dict
view is ``RecordBatch.to_pylist()`` of those batches: the same values, at the cost a source
pays to build Python objects (about 4 µs a row on the reference machine, like a database
driver or a JSON API client). Values depend only on ``(seed, row index)``: rows are drawn
in blocks of :data:`BLOCK_ROWS` and batches of any size are cut from the blocks.

Example:
    >>> first = next(dict_batches(3, seed=7, batch_size=2))
    >>> [row["id"] for row in first]
    [0, 1]
    >>> sorted(first[0]) == sorted(FIELD_NAMES)
    True
    >>> next(arrow_batches(3, seed=7, batch_size=2)).to_pylist() == first
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "BLOCK_ROWS",
    "COLUMN_TYPES",
    "DEFAULT_BATCH_SIZE",
    "FIELD_NAMES",
    "arrow_batches",
    "arrow_schema",
    "dict_batches",
]

BLOCK_ROWS = 10_000
"""Rows drawn together from one set of seeded generators; batches are cut from these blocks."""

DEFAULT_BATCH_SIZE = 10_000
"""Rows per yielded batch unless asked otherwise."""

COLUMN_TYPES: dict[str, tuple[str, bool]] = {
    "id": ("integer", False),
    "customer_id": ("integer", False),
    "name": ("string", False),
    "email": ("string", False),
    "amount": ("float", False),
    "currency": ("string", False),
    "created_at": ("timestamp", False),
    "is_active": ("boolean", False),
    "score": ("float", True),
    "country": ("string", False),
}
"""Field name to ``(Dativo column type, nullable)``, in record order."""

FIELD_NAMES: tuple[str, ...] = tuple(COLUMN_TYPES)
"""The ten field names, in record order."""

_ARROW_TYPES: dict[str, Any] = {
    "integer": pa.int64(),
    "string": pa.string(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
_SCHEMA = pa.schema(
    [pa.field(name, _ARROW_TYPES[kind], nullable=nullable) for name, (kind, nullable) in COLUMN_TYPES.items()]
)
_SYLLABLES = pa.array(
    ["ka", "lo", "mi", "ra", "ten", "vo", "sa", "ri", "no", "de", "la", "ve", "ti", "mar", "bel", "an",
     "or", "el", "us", "ic", "fa", "ro", "ju", "ne", "ha", "si", "to", "ber", "gu", "pe", "dan", "wi"]
)  # fmt: skip
_EMAIL_DOMAINS = pa.array(["@mail.com", "@post.eu", "@inbox.io", "@corp.net"])
_CURRENCIES = pa.array(["EUR", "USD", "GBP", "CHF", "JPY", "SEK", "PLN"])
_COUNTRIES = pa.array(["DE", "FR", "US", "GB", "ES", "IT", "NL", "PL", "SE", "CH", "JP", "BR"])
_CREATED_FROM_S = 1_704_067_200  # 2024-01-01T00:00:00Z
_CREATED_SPAN_S = 365 * 24 * 3600


def arrow_schema() -> pa.Schema:
    """Return the workload's Arrow schema (``created_at`` is ``timestamp[us, tz=UTC]``)."""
    return _SCHEMA


def _block(seed: int, start: int, count: int) -> pa.RecordBatch:
    """Draw ``count`` rows starting at row ``start`` (a multiple of BLOCK_ROWS)."""
    block = start // BLOCK_ROWS

    def uniform(column: int) -> pa.Array:
        # One independent, reproducible stream per (seed, block, column).
        return pc.random(count, initializer=(seed * 1_000_003 + block) * 64 + column)

    def pick(values: pa.Array, column: int) -> pa.Array:
        return pc.take(values, pc.cast(pc.floor(pc.multiply(uniform(column), len(values))), pa.int32()))

    def scaled_int(column: int, span: int) -> pa.Array:
        return pc.cast(pc.floor(pc.multiply(uniform(column), span)), pa.int64())

    ids = pa.array(range(start, start + count), pa.int64())
    syllables = [pick(_SYLLABLES, column) for column in range(5)]
    first = pc.binary_join_element_wise(syllables[0], syllables[1], "")
    last = pc.binary_join_element_wise(syllables[2], syllables[3], syllables[4], "")
    name = pc.binary_join_element_wise(pc.utf8_capitalize(first), pc.utf8_capitalize(last), " ")
    email = pc.binary_join_element_wise(
        pc.binary_join_element_wise(first, last, "."), pick(_EMAIL_DOMAINS, 5), ""
    )
    seconds = pc.add(scaled_int(9, _CREATED_SPAN_S), _CREATED_FROM_S)
    score_draw = uniform(11)
    score = pc.if_else(
        pc.less(score_draw, 0.1),
        pa.scalar(None, pa.float64()),
        pc.divide(pc.floor(pc.multiply(pc.subtract(score_draw, 0.1), 1_111_111)), 10_000),
    )
    columns = [
        ids,
        pc.add(scaled_int(6, 250_000), 1),
        name,
        email,
        pc.divide(pc.floor(pc.multiply(uniform(7), 1_000_000)), 100),
        pick(_CURRENCIES, 8),
        pc.multiply(seconds, 1_000_000).cast(pa.timestamp("us", tz="UTC")),
        pc.less(uniform(10), 0.8),
        score,
        pick(_COUNTRIES, 12),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=_SCHEMA)


def arrow_batches(n: int, seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
    """Yield the workload as ``pyarrow.RecordBatch`` objects built column by column.

    Args:
        n: Total rows.
        seed: Seed of the workload; the same seed gives the same values.
        batch_size: Rows per record batch (the last may be shorter).

    Yields:
        Record batches with the schema of :func:`arrow_schema`.

    Raises:
        ValueError: If ``n`` is negative or ``batch_size`` is not positive.
    """
    if n < 0 or batch_size <= 0:
        raise ValueError(f"n must be >= 0 and batch_size > 0, got n={n}, batch_size={batch_size}")
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for start in range(0, n, BLOCK_ROWS):
        block = _block(seed, start, min(BLOCK_ROWS, n - start))
        if batch_size == BLOCK_ROWS:
            yield block
            continue
        pending.append(block)
        pending_rows += block.num_rows
        while pending_rows >= batch_size:
            table = pa.Table.from_batches(pending, schema=_SCHEMA)
            yield from table.slice(0, batch_size).combine_chunks().to_batches()
            rest = table.slice(batch_size).combine_chunks()
            pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield from pa.Table.from_batches(pending, schema=_SCHEMA).combine_chunks().to_batches()


def dict_batches(
    n: int, seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[list[dict[str, Any]]]:
    """Yield the workload as lists of dict records (``created_at`` an aware UTC datetime).

    Args:
        n: Total rows.
        seed: Seed of the workload.
        batch_size: Records per list (the last list may be shorter).

    Yields:
        Lists of records with the ten fields of :data:`FIELD_NAMES`, the values of
        :func:`arrow_batches` with the same arguments.
    """
    for batch in arrow_batches(n, seed, batch_size):
        yield batch.to_pylist()
