"""PyTorch side of bitnetmcu: QAT layers, the FCMNIST/CNNMNIST models, the checkpoint format,
configuration and data. Pure Python (torch, numpy, yaml); the integer engine is the separate
extension module `bitnetmcu`."""
from .checkpoint import read_checkpoint, write_checkpoint
from .config import load_config
from .models import CNNMNIST, FCMNIST, build_model

__all__ = ["read_checkpoint", "write_checkpoint", "load_config", "FCMNIST", "CNNMNIST", "build_model"]
