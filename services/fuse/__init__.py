"""fuse: one verified result per (record, task) from several institutions' models, on ``predictions.fused``."""
