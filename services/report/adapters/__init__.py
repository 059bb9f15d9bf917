"""report's adapters: the model registry read through onnxruntime, and the report store on disk."""
