"""Model zoo: one module per family; importing this package registers every model."""

from . import lenet, resnet  # noqa: F401  (registers the models)
from .init import INIT_SCHEMES, init_weights
from .registry import create_model, is_model, list_models, register_model

__all__ = ["INIT_SCHEMES", "create_model", "init_weights", "is_model", "list_models", "register_model"]
