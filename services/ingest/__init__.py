"""ingest: hospital documents from ``ingest.raw`` into pseudonymized canonical records on ``records.ingested``."""
