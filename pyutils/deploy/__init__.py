"""A trained model outside the recipe: the package (``package``), TorchScript and
ONNX export (``export``), the numpy front-end (``frontend``) and the runtimes
(``runtime``: ONNX Runtime, no torch; ``torch_runtime``)."""
