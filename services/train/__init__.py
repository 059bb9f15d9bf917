"""train: tasks declared as config, PyTorch training, ONNX release on ``models.released``."""
