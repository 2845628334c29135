"""Model zoo: one module per family; importing this package registers every model."""

from . import alexnet, densenet, googlenet, lenet, mlp, nin, resnet, vgg  # noqa: F401  (registers the models)
from .build import build_model
from .init import INIT_SCHEMES, init_weights
from .registry import create_model, get_model_factory, is_model, list_models, register_model
from .shapes import conv_output_size

__all__ = [
    "INIT_SCHEMES", "build_model", "conv_output_size", "create_model", "get_model_factory", "init_weights",
    "is_model", "list_models", "register_model",
]
