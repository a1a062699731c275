"""OpenCV's classical inpainting (``cv2.inpaint``) as a network family with no weights.

Papers: Telea, "An Image Inpainting Technique Based on the Fast Marching Method", Journal of
    Graphics Tools 9(1), 2004 (``method="telea"``); Bertalmio, Bertozzi and Sapiro,
    "Navier-Stokes, Fluid Dynamics, and Image and Video Inpainting", CVPR 2001 (``"ns"``).
Code: OpenCV's ``photo`` module (Apache-2.0), called through ``cv2.inpaint``; nothing is copied.
Weights: none. The registry lists ``telea`` and ``ns`` with ``format = "builtin"``: the module
    is built from its params, so both work offline; they are the baseline every learned
    inpainter is measured against, and a fallback that needs no download.

It wraps OpenCV so that the loader, engine and inpaint task treat it as any other inpainter:
input (B,4,H,W) in [0,1], RGB then the mask (fill where above 0.5), output (B,3,H,W). Each
colour channel is inpainted alone in float32 on the 0-255 scale (OpenCV takes float images with
one channel only, and its Telea thresholds assume that scale: on [0,1] values it goes wrong), so
16-bit inputs lose no precision. On 8-bit photos this is within 0.15/255 on average of OpenCV's
own 8-bit three-channel call (which fills each channel alone too, rounding as it goes). Runs on
the CPU whatever the device.

Key layout (strict): two integer buffers, ``opencv_method`` (0 telea, 1 ns) and
``opencv_radius`` (the neighbourhood radius in pixels), so a saved module says what it is.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from imgan.archs._arch import Arch

METHODS = ("telea", "ns")


SMALLEST = 8
"""Sides shorter than this are padded for OpenCV (known pixels, replicated from the edge)."""


class OpenCVInpainter(nn.Module):
    """``cv2.inpaint`` with Telea's fast marching or the Navier-Stokes method."""

    def __init__(self, *, in_channels: int = 4, out_channels: int = 3, method: str = "telea",
                 radius: int = 3) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"OpenCV inpainting method must be one of {', '.join(METHODS)}, not {method!r}")
        if not isinstance(radius, int) or radius < 1:
            raise ValueError(f"OpenCV inpainting radius must be a positive integer, not {radius!r}")
        if in_channels != out_channels + 1 or out_channels < 1:
            raise ValueError(f"OpenCV inpainting takes the image and its mask: in_channels must be "
                             f"out_channels + 1 (got {in_channels} and {out_channels})")
        self.scale = 1
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.size_multiple = 1
        self.register_buffer("opencv_method", torch.tensor(METHODS.index(method)))
        self.register_buffer("opencv_radius", torch.tensor(radius))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import cv2
        import numpy as np

        flag = (cv2.INPAINT_TELEA, cv2.INPAINT_NS)[int(self.opencv_method)]
        radius = float(self.opencv_radius)
        images = (x[:, : self.out_channels].detach().to("cpu", torch.float32) * 255).numpy()
        masks = (x[:, self.out_channels].detach().to("cpu", torch.float32) > 0.5).numpy().astype(np.uint8)
        out = np.empty_like(images)
        height, width = images.shape[-2:]
        # OpenCV reads past the edges of a picture a few pixels high or wide (a 1x7 picture came back
        # with NaN in its hole once in a few hundred runs): give it known rows and columns, then crop.
        below, right = max(0, SMALLEST - height), max(0, SMALLEST - width)
        for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
            mask = cv2.copyMakeBorder(mask, 0, below, 0, right, cv2.BORDER_CONSTANT, value=0)
            for channel, plane in enumerate(image):
                plane = cv2.copyMakeBorder(np.ascontiguousarray(plane), 0, below, 0, right, cv2.BORDER_REPLICATE)
                out[index, channel] = cv2.inpaint(plane, mask, radius, flag)[:height, :width]
        return (torch.from_numpy(out) / 255).clamp_(0.0, 1.0).to(device=x.device, dtype=x.dtype)


def params_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """Constructor keywords of a saved OpenCVInpainter, or None."""
    if set(state_dict) != {"opencv_method", "opencv_radius"}:
        return None
    method, radius = state_dict["opencv_method"], state_dict["opencv_radius"]
    if method.numel() != 1 or radius.numel() != 1 or int(method) not in range(len(METHODS)) or int(radius) < 1:
        return None
    return {"method": METHODS[int(method)], "radius": int(radius)}


ARCH = Arch(
    name="inpaint_opencv",
    build=OpenCVInpainter,
    detect=params_from_state_dict,
    task="inpaint",
    value_range=(0.0, 1.0),
    tile_overlap=0,  # unused: not tileable
    tiny_params={"method": "telea", "radius": 3},
    # The fill propagates inward from the hole's edge: a tile inside a hole has nothing to fill from.
    tileable=False,
)
