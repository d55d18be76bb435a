"""The masked multi-coil forward operator, its adjoint, and data consistency.

A scan with coil maps S [B,C,H,W,2] and a column mask M (bool, broadcastable to [B,C,H,W,2], e.g.
[B,1,1,W,1]): A x = M F (S x);  A^H y = sum_c conj(S_c) F^H (M y_c).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .coils import sens_expand, sens_reduce

__all__ = ["adjoint_op", "data_consistency", "forward_op", "soft_data_consistency"]


def forward_op(image: Tensor, sens: Tensor, mask: Tensor) -> Tensor:
    """A x = M F (S x). image [B,1,H,W,2], sens [B,C,H,W,2], mask bool broadcastable (e.g. [B,1,1,W,1])."""
    return torch.where(mask, sens_expand(image, sens), 0.0)


def adjoint_op(kspace: Tensor, sens: Tensor, mask: Tensor) -> Tensor:
    """A^H y = sum_c conj(S_c) F^H (M y_c). kspace [B,C,H,W,2] -> [B,1,H,W,2]."""
    return sens_reduce(torch.where(mask, kspace, 0.0), sens)


def data_consistency(kspace: Tensor, measured: Tensor, mask: Tensor) -> Tensor:
    """Hard data consistency: measured lines replace the predicted ones. [B,C,H,W,2] -> same."""
    return torch.where(mask, measured, kspace)


def soft_data_consistency(kspace: Tensor, measured: Tensor, mask: Tensor, weight: Tensor | float) -> Tensor:
    """The VarNet gradient step on ||M k - y||^2: weight * M (k - y). [B,C,H,W,2] -> same (the step, not k)."""
    return torch.where(mask, kspace - measured, 0.0) * weight
