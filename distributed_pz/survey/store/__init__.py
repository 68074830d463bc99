"""The store core: schema, Zarr store and tiles, validation (what ingest and the simulator both write to)."""
