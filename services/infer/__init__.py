"""infer: batched onnxruntime scoring of clean records by every active model, on ``predictions``."""
