"""DF-GAN's networks in their published key layouts (``../shared/compat``), and the text2img family.

The published generator and DAMSM encoder are rebuilt from the listings with zero weights (no
memory) and loaded strictly; the family's own builds are detected from their keys and reloaded.
"""

from __future__ import annotations

import pytest
import torch

from imgan.archs import ARCHS, build_model, detect_arch
from imgan.archs.dfgan import (
    DAMSMTextEncoder,
    NetC,
    NetD,
    NetG,
    TextToImage,
    damsm_params,
    netd_params,
    netg_params,
    params_from_state_dict,
)
from tests.test_translation_archs import fake_state_dict, model_shapes, read_listing

PUBLISHED_NETG = {"num_features": 32, "noise_dim": 100, "cond_dim": 256, "image_size": 256, "out_channels": 3}
PUBLISHED_DAMSM = {"vocab_size": 5450, "embedding_dim": 300, "cond_dim": 256}
TINY = dict(ARCHS["dfgan"].tiny_params)


def test_netg_keys_and_shapes_equal_dfgans_published_listing() -> None:
    listing = read_listing("dfgan_netg")
    assert model_shapes(NetG(**PUBLISHED_NETG)) == listing
    assert sum(value.numel() for value in NetG(**PUBLISHED_NETG).parameters()) == 9_744_131  # the listing's count


def test_damsm_encoder_keys_and_shapes_equal_the_published_listing() -> None:
    assert model_shapes(DAMSMTextEncoder(**PUBLISHED_DAMSM)) == read_listing("damsm_rnn_encoder")


def test_published_layouts_are_recognised_and_load_strictly() -> None:
    netg = fake_state_dict(read_listing("dfgan_netg"))
    damsm = fake_state_dict(read_listing("damsm_rnn_encoder"))
    assert netg_params(netg) == PUBLISHED_NETG
    assert damsm_params(damsm) == PUBLISHED_DAMSM
    NetG(**PUBLISHED_NETG).load_state_dict(netg, strict=True)
    DAMSMTextEncoder(**PUBLISHED_DAMSM).load_state_dict(damsm, strict=True)
    combined = {**{f"generator.{k}": v for k, v in netg.items()}, **{f"text_encoder.{k}": v for k, v in damsm.items()}}
    family, params = detect_arch(combined)
    assert family == "dfgan"
    assert params == {**PUBLISHED_NETG, "text_encoder": "damsm", "vocab_size": 5450, "embedding_dim": 300}
    build_model("dfgan", params).load_state_dict(combined, strict=True)


def test_a_netg_with_one_key_missing_or_misshapen_is_not_recognised() -> None:
    netg = fake_state_dict(read_listing("dfgan_netg"))
    assert netg_params({k: v for k, v in netg.items() if k != "GBlocks.3.c_sc.bias"}) is None
    netg["GBlocks.2.c1.weight"] = torch.zeros(1).expand(256, 256, 1, 1)
    assert netg_params(netg) is None


def test_no_image_family_claims_a_published_dfgan_listing() -> None:
    netg = fake_state_dict(read_listing("dfgan_netg"))
    assert [name for name, arch in ARCHS.items() if arch.detect(netg) is not None] == []


def test_discriminator_trunk_and_matching_head_give_one_logit_per_image() -> None:
    trunk, head = NetD(num_features=8, image_size=64), NetC(num_features=8, cond_dim=16)
    features = trunk(torch.rand(3, 3, 64, 64) * 2 - 1)
    assert features.shape == (3, 64, 4, 4)
    assert head(features, torch.randn(3, 16)).shape == (3,)
    assert netd_params(trunk.state_dict()) == {"num_features": 8, "image_size": 64, "in_channels": 3}


def test_dfgans_256px_discriminator_keeps_the_unused_shortcut_convs_of_upstream() -> None:
    # Upstream's D_Block builds conv_s even where the width does not change (its checkpoints hold them).
    trunk = NetD(num_features=32, image_size=256)
    assert [block.learned_shortcut for block in trunk.DBlocks] == [True, True, True, False, False, False]
    assert "DBlocks.5.conv_s.weight" in trunk.state_dict()


@pytest.mark.parametrize("encoder", ["gru", "damsm", "classes", "none"])
def test_each_encoder_kind_is_detected_and_reloads_to_the_same_pictures(encoder: str) -> None:
    params = {**TINY, "text_encoder": encoder, "cond_dim": 0 if encoder == "none" else 8}
    torch.manual_seed(0)
    model = TextToImage(**params).eval()
    state = model.state_dict()
    family, detected = detect_arch(state)
    assert family == "dfgan" and detected["text_encoder"] == encoder
    fresh = TextToImage(**detected).eval()
    fresh.load_state_dict(state, strict=True)
    tokens, lengths = torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2])
    noise = torch.randn(2, params["noise_dim"])
    with torch.no_grad():
        expected = model(noise, model.embed(tokens, lengths))
        assert torch.equal(fresh(noise, fresh.embed(tokens, lengths)), expected)
    assert expected.shape == (2, 3, 32, 32) and expected.abs().max() <= 1


def test_padding_after_a_captions_length_does_not_change_its_embedding() -> None:
    torch.manual_seed(0)
    model = TextToImage(**TINY).eval()
    short = model.embed(torch.tensor([[3, 4]]), torch.tensor([2]))
    padded = model.embed(torch.tensor([[3, 4, 9, 9]]), torch.tensor([2]))
    assert torch.allclose(short, padded, atol=1e-6)


@pytest.mark.parametrize("size", [16, 48, 2048])
def test_an_image_size_dfgan_cannot_build_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="power of two from 32"):
        NetG(image_size=size)


def test_the_family_refuses_a_dict_with_foreign_keys() -> None:
    state = TextToImage(**TINY).state_dict()
    assert params_from_state_dict({**state, "extra.weight": torch.zeros(1)}) is None
    assert params_from_state_dict({k.removeprefix("generator."): v for k, v in state.items()
                                   if k.startswith("generator.")}) is None
