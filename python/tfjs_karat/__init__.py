"""tfjs-karat's PyTorch twin: the KArAt ViT of the TypeScript package, with the same
configurations, parameter layout and initialisation, safetensors weights both ways and
distributed training (python/train.py)."""
from .karat import (KArAtConfigError, KArAtOperator, fold, load_lib, operator_activation, operator_attention, set_impl,
                    operator_hidden, resolve_attention)
from .vit import (PAPER_CONFIG_NAMES, PRESETS, ModelConfigError, ViT, load_safetensors, load_weights, paper_config,
                  save_safetensors, vit_config)
from .safetensors import SafetensorsError

__all__ = ["KArAtConfigError", "KArAtOperator", "fold", "load_lib", "operator_activation", "operator_attention", "set_impl",
           "operator_hidden", "resolve_attention", "PAPER_CONFIG_NAMES", "PRESETS", "ModelConfigError", "ViT",
           "load_safetensors", "load_weights", "paper_config", "save_safetensors", "vit_config", "SafetensorsError"]
