"""Only for benchmarks/app_memory.py's CPU-build measurement: declare the two torchvision operators whose fake
kernels `import torchvision` registers, because torchvision's CUDA-built operators cannot load next to a CPU-only
torch. CovidNet never calls them."""

import torch

_TORCHVISION_OPS = torch.library.Library("torchvision", "DEF")
_TORCHVISION_OPS.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_TORCHVISION_OPS.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
