"""train's I/O: the Parquet training store, the model registry on disk, the worker process."""
