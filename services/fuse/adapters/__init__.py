"""fuse adapters: the join state in Redis, the registry on disk."""
