"""ResNet-50 with torchvision's exact module names, so its state dicts load with ``strict=True``.

torchvision is used when it imports (it needs a matching CUDA/CPU build, which is not always
there); otherwise this definition stands in. Both give the same ``state_dict`` keys and shapes:
``conv1``, ``bn1``, ``layer1.0.conv1`` ... ``layer4.2.bn3``, ``layer{1..4}.0.downsample.{0,1}``,
``fc`` — 320 entries (161 parameters and 159 BatchNorm buffers).

Two variants share those keys but not the computation:

- ``torchvision``: ResNet v1.5 as torchvision builds it (stride 2 in each bottleneck's 3x3
  convolution, max-pool with padding 1).
- ``vggface2``: the Caffe ResNet-50 of the VGGFace2 authors, as ported to PyTorch in the
  widely used ``resnet50_ft`` / ``resnet50_scratch`` weights (github.com/cydonia999/
  VGGFace2-pytorch): stride 2 in the first 1x1 convolution, max-pool with padding 0 and
  ``ceil_mode=True``. Loading those weights into the torchvision variant would run without an
  error and give worse features, which is why the variant is explicit.

:func:`features` returns the 2048-D globally average-pooled output of ``layer4`` (before ``fc``),
which is what the embedding plugins use; ``fc`` may have any number of outputs (1000 for
ImageNet, 8631 for VGGFace2 identities) and is never evaluated by :func:`features`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

VARIANTS = ("torchvision", "vggface2")
LAYERS = (3, 4, 6, 3)  # bottlenecks per stage in ResNet-50
FEATURE_DIM = 2048


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), plus identity or projected shortcut."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=s3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 whose ``state_dict`` matches torchvision's ``resnet50`` key for key."""

    def __init__(self, num_classes: int = 1000, variant: str = "torchvision") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown ResNet-50 variant {variant!r}; choose {VARIANTS}")
        self.variant = variant
        caffe = variant == "vggface2"
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        if caffe:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        else:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        stages = []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), LAYERS, strict=True)):
            stride = 1 if i == 0 else 2
            out = planes * Bottleneck.expansion
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out),
            )
            layer = [Bottleneck(inplanes, planes, stride, downsample, stride_in_1x1=caffe)]
            layer += [Bottleneck(out, planes, stride_in_1x1=caffe) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*layer))
            inplanes = out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's initialisation (only matters for tests that use random weights)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (``fc`` applied to :func:`features`)."""
        return self.fc(features(self, x))


def features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """2048-D pooled features before ``fc`` of a ResNet-50 (ours or torchvision's), (N, 2048)."""
    m: Any = net  # nn.Module.__getattr__ types the stages as Tensor | Module
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
    return torch.flatten(m.avgpool(x), 1)


def resnet50(num_classes: int = 1000, variant: str = "torchvision") -> nn.Module:
    """A randomly initialised ResNet-50; torchvision's class when it imports, else ours.

    Only the ``torchvision`` variant can come from torchvision; ``vggface2`` is always ours.
    """
    if variant == "torchvision":
        tv = _torchvision_resnet50()
        if tv is not None:
            return tv(weights=None, num_classes=num_classes)
    return ResNet50(num_classes=num_classes, variant=variant)


@functools.lru_cache(maxsize=1)
def _torchvision_resnet50() -> Callable[..., nn.Module] | None:
    """torchvision.models.resnet50, or None when torchvision is missing or broken.

    A torchvision wheel built for another torch raises more than ImportError on import
    (RuntimeError for missing operators, OSError for missing CUDA libraries), so any
    exception means "not available".
    """
    try:
        from torchvision.models import resnet50 as tv_resnet50
    except Exception:
        return None
    return tv_resnet50


def torchvision_available() -> bool:
    """Whether torchvision's ResNet-50 can be used here."""
    return _torchvision_resnet50() is not None
