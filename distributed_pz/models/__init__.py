"""Photo-z model families (GaZNet, DEEPZ), their heads, and the registry.

Importing this package registers every family and its variants: the family imports below
(each family's file registers itself at its foot) are the one list of families, so a new
family is its own file plus its import line here.
"""

from distributed_pz.models.base import ModelConfig, PhotoZModel
from distributed_pz.models.deepz import DeepZ, DeepZConfig  # registers DEEPZ
from distributed_pz.models.gaznet import GaZNet, GaZNetConfig  # registers GaZNet
from distributed_pz.models.registry import (
    build_model,
    config_from_dict,
    config_to_dict,
    create_model,
    list_families,
    list_models,
    model_config,
    register_family,
    register_model,
)

__all__ = [
    "DeepZ",
    "DeepZConfig",
    "GaZNet",
    "GaZNetConfig",
    "ModelConfig",
    "PhotoZModel",
    "build_model",
    "config_from_dict",
    "config_to_dict",
    "create_model",
    "list_families",
    "list_models",
    "model_config",
    "register_family",
    "register_model",
]
