"""Ingest of real catalogues (FITS/Parquet/CSV + cutouts) into a survey store."""
