"""The torch side of nibble.ops: QuantizedLinear. Imported only when it is asked for (it imports
torch), so that the package does not depend on torch."""
from __future__ import annotations

from typing import Optional, Union

import torch

from .dtypes import DataType
from .ops import quant_matmul
from .quant import QuantizedWeight, quantize


class QuantizedLinear(torch.nn.Module):
    """y = x · dequant(W) + bias: a drop-in for `torch.nn.Linear` whose weight is quantized.

    `weight` is a `nibble.QuantizedWeight` of shape [K, N] = [in_features, out_features] (the
    GEMM's layout: `nn.Linear` keeps [out_features, in_features], which `from_linear`
    transposes); `bias` an optional [out_features] tensor, added in torch in the output's type.

    `forward(x)` takes x [..., in_features] on a CUDA device (the GPU kernels) or on the CPU
    (the interpreter: slow, for tests). x of the scales' type (f16 or bf16) runs as it is; x of
    another floating type is cast to it and the result cast back, as a module replacing an f32
    Linear must. Non-contiguous x is made contiguous. The quantized weight is not a parameter
    or buffer: `.to(device)` moves only the bias, and the weight is re-packed and uploaded on
    first use on each device; `state_dict()` holds only the bias. There is no backward.
    """

    def __init__(self, weight: QuantizedWeight, bias: Optional[torch.Tensor] = None):
        super().__init__()
        if not isinstance(weight, QuantizedWeight):
            raise TypeError(f"QuantizedLinear: weight must be a nibble.QuantizedWeight, not "
                            f"{type(weight).__name__}")
        self.qweight = weight
        self.in_features, self.out_features = weight.shape
        if bias is not None and tuple(bias.shape) != (self.out_features,):
            raise ValueError(f"QuantizedLinear: bias is {tuple(bias.shape)}, expected "
                             f"({self.out_features},)")
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, dtype: Union[str, DataType] = "u4",
                    group_size: Optional[int] = 128, zero_points: bool = False,
                    scale_dtype: Union[str, DataType, None] = None) -> "QuantizedLinear":
        """The layer `linear` with its weight quantized by `nibble.quantize` (same arguments;
        `scale_dtype` defaults to bf16 for a bf16 layer and f16 otherwise, and is the type the
        kernels compute in). The bias is copied as it is."""
        weight = quantize(linear.weight, dtype=dtype, group_size=group_size,
                          zero_points=zero_points, scale_dtype=scale_dtype, layout="nk")
        return cls(weight, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compute = (torch.bfloat16 if self.qweight.scale_dtype.name == "bf16" else torch.float16)
        y = quant_matmul(x.to(compute).contiguous(), self.qweight)
        if self.bias is not None:
            y = y + self.bias.to(device=y.device, dtype=y.dtype)
        return y if x.dtype == compute else y.to(x.dtype)

    def extra_repr(self) -> str:
        weight = self.qweight
        group = "per-channel" if weight.per_channel else f"group_size={weight.group_size}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, dtype={weight.dtype.name}, {group}, "
                f"scales={weight.scale_dtype.name}")
