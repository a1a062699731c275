"""DF-GAN: a one-stage text-to-image GAN, its DAMSM text encoder, and imgan's small caption encoders.

Paper: Tao et al., "DF-GAN: A Simple and Effective Baseline for Text-to-Image Synthesis",
    CVPR 2022, arXiv:2008.05865. The text encoder is AttnGAN's DAMSM RNN encoder: Xu et al.,
    "AttnGAN: Fine-Grained Text to Image Generation with Attentional Generative Adversarial
    Networks", CVPR 2018, arXiv:1711.10485.
Original code: tobran/DF-GAN, ``code/models/GAN.py`` (NetG, NetD, NetC, G_Block, D_Block, DFBLK,
    Affine) and ``code/models/DAMSM.py`` (RNN_ENCODER); weights and code under CC BY-NC-SA 4.0.
    This file is written from the published key layouts (``shared/compat/dfgan_netg.keys.txt``,
    ``damsm_rnn_encoder.keys.txt``), not copied.
Weights: DF-GAN's bird (CUB) and COCO generators and their DAMSM text encoders are published on
    Google Drive only (CC BY-NC-SA 4.0): ``imgan models add`` registers the files a user
    downloaded. imgan's own ``imgan-text2img`` (BSD-3-Clause) uses this generator with
    ``CaptionEncoder``.

Key layouts (strict):

- ``NetG`` (``ckpt["model"]["netG"]``, maybe ``module.``-prefixed): ``fc`` (noise -> 8 x
  num_features x 4 x 4), ``GBlocks.{i}`` (nearest x2, then ``c1``/``c2`` 3x3 convs, each after a
  ``fuse{1,2}`` of two ``affine{0,1}`` text-conditioned channel affines whose ``fc_gamma`` /
  ``fc_beta`` are ``linear1`` (cond + noise -> C), ReLU, ``linear2`` (C -> C); ``c_sc`` 1x1 when
  the width changes), ``to_rgb.1`` (LeakyReLU, 3x3 conv, tanh). There are log2(image_size) - 2
  blocks, widths ``num_features * min(2**k, 8)`` from the output back; image_size is a power of
  two from 32 on (below, the upstream widths do not fit the 4x4 start). Output in [-1,1].
- ``NetD`` / ``NetC`` (``netD``, ``netC``): ``conv_img`` 3x3, ``DBlocks.{i}`` (``conv_r.{0,2}``
  4x4 s2 and 3x3 without bias, ``conv_s`` 1x1 with bias, present even where the width does not
  change and then unused, ``gamma`` scalar); ``joint_conv.{0,2}`` on the 4x4 features with the
  sentence embedding tiled beside them.
- ``DAMSMTextEncoder`` (RNN_ENCODER; plain state dict): ``encoder`` (Embedding vocab x 300) and a
  one-layer bidirectional LSTM ``rnn`` of cond_dim / 2 per direction; the sentence embedding is
  the two final hidden states.
- ``TextToImage``, the family imgan loads: ``generator.*`` (NetG) plus ``text_encoder.*``: a
  DAMSM encoder, imgan's ``CaptionEncoder`` (``text_encoder.{embedding,rnn,project,norm}``), a
  ``ClassEncoder`` (``text_encoder.classes``: one embedding per class name, for class-conditional
  GANs) or none (unconditional).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from imgan.archs._arch import Arch
from imgan.archs._checks import require_positive
from imgan.archs.cyclegan import matches_layout

__all__ = [
    "TEXT_ENCODERS",
    "CaptionEncoder",
    "ClassEncoder",
    "DAMSMTextEncoder",
    "NetC",
    "NetD",
    "NetG",
    "TextToImage",
]

TEXT_ENCODERS = ("damsm", "gru", "classes", "none")
"""``damsm``: DF-GAN's frozen DAMSM LSTM; ``gru``: imgan's caption encoder, trained with the GAN;
``classes``: one learnt vector per class name; ``none``: unconditional."""

_SLOPE = 0.2


def _stage_widths(num_features: int, image_size: int) -> list[int]:
    """DF-GAN's widths from the finest stage to the coarsest: ``num_features * min(2**k, 8)``."""
    return [num_features * min(2**k, 8) for k in range(int(math.log2(image_size)) - 1)]


def check_image_size(network: str, image_size: int) -> None:
    """ValueError unless ``image_size`` is a power of two from 32 to 1024."""
    if not isinstance(image_size, int) or image_size < 32 or image_size > 1024 or image_size & (image_size - 1):
        raise ValueError(f"{network} image_size must be a power of two from 32 to 1024, not {image_size!r}")


# --------------------------------------------------------------------------------------------
# Blocks


class Affine(nn.Module):
    """Per-channel scale and shift of a feature map, each predicted from the condition by a 2-layer MLP.

    Starts as the identity (scale 1, shift 0), as upstream initialises it.
    """

    def __init__(self, cond_dim: int, num_features: int) -> None:
        super().__init__()
        self.fc_gamma = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(cond_dim, num_features)),
            ("relu1", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(num_features, num_features)),
        ]))
        self.fc_beta = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(cond_dim, num_features)),
            ("relu1", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(num_features, num_features)),
        ]))
        nn.init.zeros_(self.fc_gamma.linear2.weight)
        nn.init.ones_(self.fc_gamma.linear2.bias)
        nn.init.zeros_(self.fc_beta.linear2.weight)
        nn.init.zeros_(self.fc_beta.linear2.bias)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale = self.fc_gamma(condition)[:, :, None, None]
        shift = self.fc_beta(condition)[:, :, None, None]
        return scale * x + shift


class DFBlock(nn.Module):
    """DF-GAN's deep fusion block (``DFBLK``): two condition affines, each followed by LeakyReLU."""

    def __init__(self, cond_dim: int, num_features: int) -> None:
        super().__init__()
        self.affine0 = Affine(cond_dim, num_features)
        self.affine1 = Affine(cond_dim, num_features)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.affine0(x, condition), _SLOPE)
        return F.leaky_relu(self.affine1(x, condition), _SLOPE)


class GBlock(nn.Module):
    """Upsample x2 (nearest), then shortcut + (fuse, conv, fuse, conv)."""

    def __init__(self, cond_dim: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.c2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.fuse1 = DFBlock(cond_dim, in_channels)
        self.fuse2 = DFBlock(cond_dim, out_channels)
        self.c_sc = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        residual = self.c2(self.fuse2(self.c1(self.fuse1(x, condition)), condition))
        shortcut = self.c_sc(x) if self.c_sc is not None else x
        return shortcut + residual


class DBlock(nn.Module):
    """Downsample x2: avg-pooled (1x1-projected where the width changes) input + gamma x residual convs."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_r = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 4, 2, 1, bias=False),
            nn.LeakyReLU(_SLOPE, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.LeakyReLU(_SLOPE, inplace=True),
        )
        self.conv_s = nn.Conv2d(in_channels, out_channels, 1)  # upstream builds it even when unused
        self.gamma = nn.Parameter(torch.zeros(1))
        self.learned_shortcut = in_channels != out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv_r(x)
        if self.learned_shortcut:
            x = self.conv_s(x)
        return F.avg_pool2d(x, 2) + self.gamma * residual


# --------------------------------------------------------------------------------------------
# Networks


class NetG(nn.Module):
    """DF-GAN's generator: noise and a sentence embedding -> (B, out_channels, S, S) in [-1,1]."""

    def __init__(
        self,
        *,
        num_features: int = 32,
        noise_dim: int = 100,
        cond_dim: int = 256,
        image_size: int = 256,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        require_positive("NetG", {"num_features": num_features, "noise_dim": noise_dim,
                                  "out_channels": out_channels})
        if not isinstance(cond_dim, int) or cond_dim < 0:
            raise ValueError(f"NetG cond_dim must be a non-negative integer, not {cond_dim!r}")
        check_image_size("NetG", image_size)
        self.num_features = num_features
        self.noise_dim = noise_dim
        self.cond_dim = cond_dim
        self.image_size = image_size
        widths = _stage_widths(num_features, image_size)[::-1]
        self.fc = nn.Linear(noise_dim, num_features * 8 * 4 * 4)
        self.GBlocks = nn.ModuleList(
            GBlock(cond_dim + noise_dim, width_in, width_out)
            for width_in, width_out in zip(widths, widths[1:], strict=False)
        )
        self.to_rgb = nn.Sequential(
            nn.LeakyReLU(_SLOPE, inplace=True),
            nn.Conv2d(widths[-1], out_channels, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, noise: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        out = self.fc(noise).view(noise.shape[0], 8 * self.num_features, 4, 4)
        condition = torch.cat((noise, sentence), dim=1)
        for block in self.GBlocks:
            out = block(out, condition)
        return self.to_rgb(out)


class NetD(nn.Module):
    """DF-GAN's discriminator trunk: (B, C, S, S) in [-1,1] -> (B, 8 x num_features, 4, 4) features."""

    def __init__(self, *, num_features: int = 32, image_size: int = 256, in_channels: int = 3) -> None:
        super().__init__()
        require_positive("NetD", {"num_features": num_features, "in_channels": in_channels})
        check_image_size("NetD", image_size)
        self.image_size = image_size
        widths = _stage_widths(num_features, image_size)
        self.conv_img = nn.Conv2d(in_channels, num_features, 3, 1, 1)
        self.DBlocks = nn.ModuleList(DBlock(width_in, width_out)
                                     for width_in, width_out in zip(widths, widths[1:], strict=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_img(x)
        for block in self.DBlocks:
            out = block(out)
        return out


class NetC(nn.Module):
    """DF-GAN's matching head: NetD's 4x4 features and a sentence embedding -> (B,) logits."""

    def __init__(self, *, num_features: int = 32, cond_dim: int = 256) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.joint_conv = nn.Sequential(
            nn.Conv2d(num_features * 8 + cond_dim, num_features * 2, 3, 1, 1, bias=False),
            nn.LeakyReLU(_SLOPE, inplace=True),
            nn.Conv2d(num_features * 2, 1, 4, 1, 0, bias=False),
        )

    def forward(self, features: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        tiled = sentence[:, :, None, None].expand(-1, -1, *features.shape[-2:])
        return self.joint_conv(torch.cat((features, tiled), dim=1)).flatten()


class DAMSMTextEncoder(nn.Module):
    """AttnGAN/DF-GAN's RNN_ENCODER: word indices -> a (B, cond_dim) sentence embedding.

    One bidirectional LSTM layer of ``cond_dim / 2`` per direction over 300-d word embeddings;
    the embedding is [final forward state, final backward state]. Inference only here (upstream's
    dropout is off in eval mode, and its LSTM has a single layer, so no dropout between layers).
    """

    def __init__(self, *, vocab_size: int = 5450, embedding_dim: int = 300, cond_dim: int = 256) -> None:
        super().__init__()
        require_positive("DAMSMTextEncoder", {"vocab_size": vocab_size, "embedding_dim": embedding_dim,
                                              "cond_dim": cond_dim})
        if cond_dim % 2:
            raise ValueError(f"DAMSMTextEncoder cond_dim must be even (two directions), not {cond_dim}")
        self.encoder = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = nn.LSTM(embedding_dim, cond_dim // 2, num_layers=1, batch_first=True, bidirectional=True)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(self.encoder(tokens), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, (hidden, _) = self.rnn(packed)
        return hidden.transpose(0, 1).reshape(tokens.shape[0], -1)


class CaptionEncoder(nn.Module):
    """imgan's small caption encoder, trained with the GAN: embeddings, a bidirectional GRU, a projection.

    The sentence embedding is the layer-normalised projection of both final GRU states, so
    its scale stays fixed while the encoder learns.
    """

    def __init__(self, *, vocab_size: int, embedding_dim: int = 64, cond_dim: int = 128) -> None:
        super().__init__()
        require_positive("CaptionEncoder", {"vocab_size": vocab_size, "embedding_dim": embedding_dim,
                                            "cond_dim": cond_dim})
        if cond_dim % 2:
            raise ValueError(f"CaptionEncoder cond_dim must be even (two directions), not {cond_dim}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = nn.GRU(embedding_dim, cond_dim // 2, num_layers=1, batch_first=True, bidirectional=True)
        self.project = nn.Linear(cond_dim, cond_dim)
        self.norm = nn.LayerNorm(cond_dim)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(tokens), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, hidden = self.rnn(packed)
        return self.norm(self.project(hidden.transpose(0, 1).reshape(tokens.shape[0], -1)))


class ClassEncoder(nn.Module):
    """A class-conditional GAN's condition: the mean learnt vector of the class names a caption holds."""

    def __init__(self, *, vocab_size: int, cond_dim: int = 128) -> None:
        super().__init__()
        require_positive("ClassEncoder", {"vocab_size": vocab_size, "cond_dim": cond_dim})
        self.classes = nn.Embedding(vocab_size, cond_dim)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        mask = (steps[None, :] < lengths.to(tokens.device)[:, None]).to(self.classes.weight.dtype)
        summed = (self.classes(tokens) * mask[:, :, None]).sum(dim=1)
        return summed / mask.sum(dim=1, keepdim=True).clamp(min=1.0)


# --------------------------------------------------------------------------------------------
# The family imgan loads


class TextToImage(nn.Module):
    """A generator plus the text encoder that conditions it; ``embed`` then ``forward``.

    ``embed(tokens, lengths)`` gives the condition (B, cond_dim) of padded word indices;
    ``forward(noise, condition)`` gives (B, out_channels, image_size, image_size) in [-1,1].
    """

    def __init__(
        self,
        *,
        image_size: int = 256,
        num_features: int = 32,
        noise_dim: int = 100,
        cond_dim: int = 256,
        out_channels: int = 3,
        text_encoder: str = "damsm",
        vocab_size: int = 5450,
        embedding_dim: int = 300,
    ) -> None:
        super().__init__()
        if text_encoder not in TEXT_ENCODERS:
            raise ValueError(f"text_encoder must be one of {', '.join(TEXT_ENCODERS)}, not {text_encoder!r}")
        if (text_encoder == "none") != (cond_dim == 0):
            raise ValueError("an unconditional generator (text_encoder 'none') has cond_dim 0, and only it")
        self.generator = NetG(num_features=num_features, noise_dim=noise_dim, cond_dim=cond_dim,
                              image_size=image_size, out_channels=out_channels)
        self.text_encoder: nn.Module | None
        if text_encoder == "damsm":
            self.text_encoder = DAMSMTextEncoder(vocab_size=vocab_size, embedding_dim=embedding_dim,
                                                 cond_dim=cond_dim)
        elif text_encoder == "gru":
            self.text_encoder = CaptionEncoder(vocab_size=vocab_size, embedding_dim=embedding_dim,
                                               cond_dim=cond_dim)
        elif text_encoder == "classes":
            self.text_encoder = ClassEncoder(vocab_size=vocab_size, cond_dim=cond_dim)
        else:
            self.text_encoder = None
        self.encoder_kind = text_encoder
        self.image_size = image_size
        self.noise_dim = noise_dim
        self.cond_dim = cond_dim
        self.scale = 1
        self.in_channels = 0  # no image in
        self.out_channels = out_channels
        self.size_multiple = 1

    def embed(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The (B, cond_dim) condition of padded word indices (B, T) with their lengths (B,)."""
        if self.text_encoder is None:
            return tokens.new_zeros((tokens.shape[0], 0), dtype=self.generator.fc.weight.dtype)
        return self.text_encoder(tokens, lengths)

    def forward(self, noise: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.generator(noise, condition)


# --------------------------------------------------------------------------------------------
# Checkpoint detection

_GBLOCK = re.compile(r"^GBlocks\.(\d+)\.")
_DBLOCK = re.compile(r"^DBlocks\.(\d+)\.")


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    value = state_dict.get(key)
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def netg_params(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int] | None:
    """NetG's constructor keywords read from a NetG state dict (unwrapped), if its layout is exactly NetG's."""
    fc = _shape(state_dict, "fc.weight")
    to_rgb = _shape(state_dict, "to_rgb.1.weight")
    affine = _shape(state_dict, "GBlocks.0.fuse1.affine0.fc_gamma.linear1.weight")
    if fc is None or to_rgb is None or affine is None or len(fc) != 2 or len(to_rgb) != 4 or len(affine) != 2:
        return None
    blocks = {int(match.group(1)) for key in state_dict if (match := _GBLOCK.match(key))}
    if not blocks or blocks != set(range(len(blocks))) or fc[0] % 128:
        return None
    params = {"num_features": fc[0] // 128, "noise_dim": fc[1], "cond_dim": affine[1] - fc[1],
              "image_size": 4 * 2 ** len(blocks), "out_channels": to_rgb[0]}
    if params["cond_dim"] < 0 or params["image_size"] > 1024 or params["image_size"] < 32:
        return None
    return params if matches_layout(state_dict, lambda: NetG(**params), optional=()) else None


def netd_params(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int] | None:
    """NetD's constructor keywords read from a NetD state dict, if its layout is exactly NetD's."""
    first = _shape(state_dict, "conv_img.weight")
    blocks = {int(match.group(1)) for key in state_dict if (match := _DBLOCK.match(key))}
    if first is None or len(first) != 4 or not blocks or blocks != set(range(len(blocks))):
        return None
    params = {"num_features": first[0], "image_size": 4 * 2 ** len(blocks), "in_channels": first[1]}
    if params["image_size"] > 1024:
        return None
    return params if matches_layout(state_dict, lambda: NetD(**params), optional=()) else None


def damsm_params(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int] | None:
    """DAMSMTextEncoder's keywords read from an RNN_ENCODER state dict, if its layout is exactly that."""
    embedding = _shape(state_dict, "encoder.weight")
    recurrent = _shape(state_dict, "rnn.weight_hh_l0")
    if embedding is None or recurrent is None or len(embedding) != 2 or len(recurrent) != 2:
        return None
    params = {"vocab_size": embedding[0], "embedding_dim": embedding[1], "cond_dim": 2 * recurrent[1]}
    return params if matches_layout(state_dict, lambda: DAMSMTextEncoder(**params), optional=()) else None


def _encoder_params(encoder: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """The text_encoder / vocab_size / embedding_dim keywords of a ``text_encoder.*`` sub-dict."""
    if not encoder:
        return {"text_encoder": "none", "vocab_size": 0, "embedding_dim": 0}
    if "encoder.weight" in encoder:
        params = damsm_params(encoder)
        return None if params is None else {"text_encoder": "damsm", "vocab_size": params["vocab_size"],
                                            "embedding_dim": params["embedding_dim"]}
    classes = _shape(encoder, "classes.weight")
    if classes is not None and len(classes) == 2:
        return {"text_encoder": "classes", "vocab_size": classes[0], "embedding_dim": 0}
    embedding = _shape(encoder, "embedding.weight")
    if embedding is not None and len(embedding) == 2:
        return {"text_encoder": "gru", "vocab_size": embedding[0], "embedding_dim": embedding[1]}
    return None


def params_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """TextToImage's keywords for a ``generator.*`` + ``text_encoder.*`` state dict, or None.

    The generator's sizes come from ``netg_params``, the encoder's kind from its keys and its
    sizes from its embedding; then every key and shape must match that network exactly.
    """
    if not state_dict or not all(key.startswith(("generator.", "text_encoder.")) for key in state_dict):
        return None
    generator = {key.removeprefix("generator."): value for key, value in state_dict.items()
                 if key.startswith("generator.")}
    encoder = {key.removeprefix("text_encoder."): value for key, value in state_dict.items()
               if key.startswith("text_encoder.")}
    netg = netg_params(generator)
    encoding = _encoder_params(encoder)
    if netg is None or encoding is None:
        return None
    params = {"image_size": netg["image_size"], "num_features": netg["num_features"],
              "noise_dim": netg["noise_dim"], "cond_dim": netg["cond_dim"], "out_channels": netg["out_channels"],
              **encoding}
    try:
        matches = matches_layout(state_dict, lambda: TextToImage(**params), optional=())
    except ValueError:
        return None
    return params if matches else None


# --------------------------------------------------------------------------------------------
# Declaration

ARCH = Arch(
    name="dfgan",
    build=TextToImage,
    detect=params_from_state_dict,
    task="text2img",
    kind="text2img",
    value_range=(-1.0, 1.0),
    tile_overlap=0,
    tileable=False,
    tiny_params={"image_size": 32, "num_features": 4, "noise_dim": 8, "cond_dim": 8, "text_encoder": "gru",
                 "vocab_size": 12, "embedding_dim": 8},
)
