"""clean's adapters: Redis."""
