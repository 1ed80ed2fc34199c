"""Google's TensorFlow Lite MobileNetV2 (ImageNet) as a torchvision ``mobilenet_v2`` state dict.

The ``tflite`` package parses the flatbuffer (no TensorFlow needed). The file's convolutions are read in graph
order, dequantised per output channel (``scale[c] * (q - zero_point[c])``), transposed from TFLite's
``[out, kh, kw, in]`` (depthwise ``[1, kh, kw, channels]``) to PyTorch's ``[out, in, kh, kw]`` (depthwise
``[channels, 1, kh, kw]``), and laid onto torchvision's modules in the same order, each shape checked. Batch norm
is folded into each TFLite convolution, so every ``BatchNorm2d`` of the torchvision network first becomes an identity
(weight 1, mean 0, variance 1 - eps) whose bias is the folded bias. The last 1×1 convolution is the 1001-way
ImageNet classifier (output 0 is "background").

An identity batch norm is right at inference but wrong in training, where batch norm divides by the batch's own
statistics: every channel would be squeezed to unit variance and the pretrained network lost in the first step.
``restore_batch_norm`` gives each batch norm back statistics measured on real photos (mean μ, variance σ², weight
√(σ² + eps), bias b + μ), which leaves the inference function as it was and makes training start from it.

TensorFlow pads a stride-2 convolution "SAME", one more row and column at the bottom/right than torchvision's
symmetric padding; ``tensorflow_padding`` reproduces it on a built network (used to prove the conversion right).
Both files expect pixels mapped to [-1, 1]: ``TFLITE_NORMALISATION`` is that, as a (mean, std) pair on [0, 1].
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from covidnet.errors import CheckpointError

IMAGENET_OUTPUTS = 1001  # TFLite's ImageNet head: 1000 classes after a "background" output
TFLITE_NORMALISATION = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}  # x / 127.5 - 1 on 8-bit pixels
_CONVOLUTIONS = {"CONV_2D", "DEPTHWISE_CONV_2D"}


def convert_mobilenet_v2(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a 1001-way torchvision ``mobilenet_v2`` holding the TFLite file's weights."""
    layers = read_convolutions(path)
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=IMAGENET_OUTPUTS)
    targets = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    if len(layers) != len(targets):
        raise CheckpointError(
            f"{Path(path).name} has {len(layers)} convolutions; torchvision's mobilenet_v2 has {len(targets)} "
            "layers with weights. Is it a MobileNetV2 1.0?"
        )
    state = model.state_dict()
    names = {module: name for name, module in model.named_modules()}
    for (weight, bias), module in zip(layers, targets, strict=True):
        name = names[module]
        if isinstance(module, nn.Linear):
            weight = weight.reshape(weight.shape[0], -1)
        if weight.shape != module.weight.shape:
            raise CheckpointError(f"{name}: the file's weight has shape {list(weight.shape)}, "
                                  f"torchvision's {list(module.weight.shape)}.")  # fmt: skip
        state[f"{name}.weight"] = weight
        if isinstance(module, nn.Linear):
            state[f"{name}.bias"] = bias
        else:
            _identity_batch_norm(state, _batch_norm_after(name), bias)
    return state


def read_convolutions(path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every convolution of the file's graph, in order: (float weight in PyTorch layout, float bias)."""
    import tflite  # the flatbuffer reader; imported here so the app's imports stay light

    try:
        buffer = Path(path).read_bytes()
        model = tflite.Model.GetRootAsModel(buffer, 0)
        graph = model.Subgraphs(0)
    except (OSError, IndexError, AttributeError) as e:
        raise CheckpointError(f"Cannot read TensorFlow Lite file {str(path)!r}: {e}.") from None
    opcodes = [_opcode_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    layers = []
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        kind = opcodes[op.OpcodeIndex()]
        if kind not in _CONVOLUTIONS:
            continue
        weight = _dequantised(model, graph.Tensors(op.Inputs(1)))
        bias = _dequantised(model, graph.Tensors(op.Inputs(2)))
        # depthwise [1, kh, kw, channels] -> [channels, 1, kh, kw]; else [out, kh, kw, in] -> [out, in, kh, kw]
        weight = weight.transpose(3, 0, 1, 2) if kind == "DEPTHWISE_CONV_2D" else weight.transpose(0, 3, 1, 2)
        layers.append((torch.from_numpy(np.ascontiguousarray(weight)), torch.from_numpy(bias)))
    return layers


def restore_batch_norm(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Measure each batch norm's input statistics on ``images`` (in [-1, 1]) through ``model``'s identity batch norms
    and re-express every one with them, its inference function unchanged (see the module's docstring)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    seen: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module: nn.Module, inputs: tuple[torch.Tensor]) -> None:
        x = inputs[0].double()
        seen[module] = (x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False))

    hooks = [m.register_forward_pre_hook(record) for m in norms]
    try:
        with torch.inference_mode():
            model.eval()(images)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for m in norms:
            mean, var = seen[m]
            m.weight.copy_((var + m.eps).sqrt())
            m.bias.add_(mean)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
    return model


@contextlib.contextmanager
def tensorflow_padding(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every stride-2 convolution of ``model`` pads as TensorFlow's "SAME" does (the extra row
    and column at the bottom/right) instead of symmetrically."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    saved = [m.padding for m in convs]
    hooks = [m.register_forward_pre_hook(_pad_same) for m in convs]
    for m in convs:
        m.padding = (0, 0)
    try:
        yield model
    finally:
        for m, padding, hook in zip(convs, saved, hooks, strict=True):
            m.padding = padding
            hook.remove()


def _pad_same(conv: nn.Conv2d, inputs: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    (x,) = inputs
    pads = []
    for size, kernel, stride in zip(reversed(x.shape[2:]), reversed(conv.kernel_size), reversed(conv.stride),
                                    strict=True):  # fmt: skip
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return (F.pad(x, pads),)


def _identity_batch_norm(state: dict[str, torch.Tensor], name: str, bias: torch.Tensor) -> None:
    """The batch norm ``name`` passes its input through and adds ``bias`` (folded into the TFLite convolution)."""
    eps = 1e-5  # torchvision's BatchNorm2d default
    state[f"{name}.weight"] = torch.ones_like(bias)
    state[f"{name}.bias"] = bias
    state[f"{name}.running_mean"] = torch.zeros_like(bias)
    state[f"{name}.running_var"] = torch.full_like(bias, 1.0 - eps)


def _batch_norm_after(conv_name: str) -> str:
    """torchvision's mobilenet_v2 puts each convolution's batch norm right after it in the same Sequential."""
    parent, _, index = conv_name.rpartition(".")
    return f"{parent}.{int(index) + 1}"


def _dequantised(model, tensor) -> np.ndarray:
    """A constant tensor's values as float32, dequantised per channel along its quantised dimension."""
    dtypes = {0: np.float32, 2: np.int32, 3: np.uint8, 9: np.int8}
    if tensor.Type() not in dtypes:
        raise CheckpointError(f"Tensor {tensor.Name().decode()!r} has unsupported type {tensor.Type()}.")
    raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
    values = np.frombuffer(raw.tobytes(), dtype=dtypes[tensor.Type()]).reshape(tensor.ShapeAsNumpy())
    if tensor.Type() == 0:
        return values.astype(np.float32)
    quant = tensor.Quantization()
    shape = [1] * values.ndim
    if quant.ScaleLength() > 1:
        shape[quant.QuantizedDimension()] = -1
    scale = quant.ScaleAsNumpy().astype(np.float64).reshape(shape)
    zero_point = quant.ZeroPointAsNumpy().astype(np.float64).reshape(shape) if quant.ZeroPointLength() else 0.0
    return (scale * (values.astype(np.float64) - zero_point)).astype(np.float32)


def _opcode_name(code) -> str:
    import tflite

    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())  # older files fill only the deprecated field
    return tflite.opcode2name(builtin)
