"""A trained model outside the recipe: the package (``package``), TorchScript and
ONNX export (``export``), the numpy front-end (``network_input``; a model's own, before
its ONNX network part: ``network_part``) and the runtimes (``runtime``: ONNX Runtime, no
torch; ``torch_runtime``)."""
