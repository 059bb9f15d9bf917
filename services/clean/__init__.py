"""clean: ``records.ingested`` → de-duplicated, normalized, flagged records with features on ``records.clean``."""
