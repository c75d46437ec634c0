"""Casting a writer's rows to its files' schema: the one check both built-in writers make."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from dativo_plugin_sdk import ValidationError

__all__ = ["conform_to_schema"]


def conform_to_schema(table: pa.Table, schema: pa.Schema, *, owner: str) -> pa.Table:
    """Cast ``table`` to ``schema``: columns in its order, missing ones null, types converted safely.

    Args:
        table: The rows.
        schema: The files' schema.
        owner: What the schema belongs to, for messages ("the dataset's schema").

    Returns:
        The rows with exactly ``schema``.

    Raises:
        ValidationError: A column ``schema`` lacks, a value that does not convert, or a null in
            a required column.
    """
    extra = [c for c in table.column_names if c not in schema.names]
    if extra:
        raise ValidationError(
            f"records have column(s) {extra} that {owner} does not have ({', '.join(schema.names)})",
            details={"columns": extra},
        )
    arrays = []
    for target in schema:
        if target.name in table.column_names:
            column = table.column(target.name)
            if column.type != target.type:
                try:
                    column = pc.cast(column, target.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    raise ValidationError(
                        f"column {target.name!r} holds {column.type} values that do not convert to "
                        f"{target.type}: {exc}",
                        details={
                            "column": target.name,
                            "type": str(column.type),
                            "expected": str(target.type),
                        },
                    ) from None
        else:
            column = pa.chunked_array([pa.nulls(table.num_rows, target.type)])
        if not target.nullable and column.null_count:
            raise ValidationError(
                f"required column {target.name!r} has {column.null_count} null value(s)",
                details={"column": target.name, "null_count": column.null_count},
            )
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)
