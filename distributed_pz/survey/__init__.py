"""The survey data model: Zarr store, schema validation, ingest of real catalogues, simulator."""
