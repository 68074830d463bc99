"""Photo-z model families (GaZNet, DEEPZ), their heads, and the registry."""

from distributed_pz.models.base import PhotoZModel
from distributed_pz.models.deepz import DeepZ, DeepZConfig
from distributed_pz.models.gaznet import GaZNet, GaZNetConfig
from distributed_pz.models.registry import (
    ModelConfig,
    build_model,
    config_from_dict,
    config_to_dict,
    create_model,
    list_models,
    model_config,
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
    "list_models",
    "model_config",
    "register_model",
]
