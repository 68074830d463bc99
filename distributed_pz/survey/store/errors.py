"""One exception type for every problem found in a survey store."""

from __future__ import annotations


class StoreError(ValueError):
    """A survey store, tile, array or chunk is missing, malformed or unreadable.

    The message is one line naming where the problem is, e.g.
    ``store '/data/kids': tile 'KIDS_129.0_-0.5', array 'mag', chunk 3 (rows 3072-4095): ...``.
    """

    def __init__(
        self,
        message: str,
        *,
        store: str | None = None,
        tile: str | None = None,
        array: str | None = None,
        chunk: int | None = None,
        rows: tuple[int, int] | None = None,
    ) -> None:
        self.store, self.tile, self.array, self.chunk, self.rows = store, tile, array, chunk, rows
        where = []
        if store is not None:
            where.append(f"store {store!r}")
        if tile is not None:
            where.append(f"tile {tile!r}")
        if array is not None:
            where.append(f"array {array!r}")
        if chunk is not None:
            span = f" (rows {rows[0]}-{rows[1] - 1})" if rows else ""
            where.append(f"chunk {chunk}{span}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
