"""CUDA settings that the torch backend and Keras-on-torch share, so neither framework backend imports the other.

torch is imported inside the functions: importing this module loads no framework.
"""

from __future__ import annotations


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used by torch here, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda
        return f"torch.cuda.is_available() is False (torch built with CUDA {built}; no usable GPU or driver)"
    return None


def set_cuda_tf32(enabled: bool) -> None:
    """TF32 for fp32 matmuls and convolutions; cuDNN convolutions default to TF32, so fp32 must switch it off explicitly."""
    import torch

    mode = "tf32" if enabled else "ieee"
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode
