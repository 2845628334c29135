"""Model zoo: one module per family; importing this package registers every model."""

from . import lenet, resnet  # noqa: F401  (registers the models)
from .init import INIT_SCHEMES, init_weights
from .build import build_model
from .registry import create_model, get_model_factory, is_model, list_models, register_model

__all__ = ["INIT_SCHEMES", "build_model", "create_model", "get_model_factory", "init_weights", "is_model", "list_models", "register_model"]
