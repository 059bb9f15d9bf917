"""ingest's adapters: files under the data dir."""
