"""Model zoo: one module per family; importing this package registers every model. `create_model` builds them."""

from . import alexnet, densenet, googlenet, lenet, mlp, nin, resnet, vgg  # noqa: F401  (registers the models)
from .init import INIT_SCHEMES, init_weights
from .registry import create_model, get_model_factory, is_model, list_models, model_options, register_model
from .shapes import InputTooSmall, conv_output_size

__all__ = [
    "INIT_SCHEMES", "InputTooSmall", "conv_output_size", "create_model", "get_model_factory", "init_weights",
    "is_model", "list_models", "model_options", "register_model",
]
