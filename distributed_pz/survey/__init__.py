"""The survey data model: the store core (store/), ingest of real catalogues (ingest/), the simulator (sim/)."""
