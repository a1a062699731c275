"""The mask toolkit: what marks a hole, growing and feathering it, the crops around it, random holes."""

from __future__ import annotations

import math

import pytest
import torch

from imgan.errors import InputError, UsageError
from imgan.io import Picture
from imgan.masks import (
    Box,
    Region,
    blend_weights,
    fill_regions,
    hole_from_alpha,
    hole_from_boxes,
    hole_from_mask,
    parse_box,
    random_hole,
    resize_hole,
)


def picture(rgb: torch.Tensor, alpha: torch.Tensor | None = None, name: str = "mask.png") -> Picture:
    return Picture(rgb=rgb, alpha=alpha, bit_depth=8, grayscale=False, icc_profile=None, exif=None,
                   source_format="png", name=name)


def grey(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values).expand(1, 3, -1, -1).clone()


def test_white_fills_and_the_threshold_is_half_grey() -> None:
    mask = picture(grey([[0.0, 0.49, 0.51, 1.0]]))
    assert hole_from_mask(mask)[0, 0].tolist() == [[False, False, True, True]]
    assert hole_from_mask(mask, invert=True)[0, 0].tolist() == [[True, True, False, False]]


def test_a_coloured_mask_is_read_by_its_luma() -> None:
    red, green = torch.zeros(1, 3, 1, 2), torch.zeros(1, 3, 1, 2)
    red[:, 0], green[:, 1] = 1.0, 1.0  # luma 0.299 and 0.587
    assert hole_from_mask(picture(torch.cat([red, green], dim=-1)))[0, 0].tolist() == [[False] * 2 + [True] * 2]


def test_transparent_mask_pixels_keep_and_a_hole_painted_on_a_layer_fills() -> None:
    rgb = torch.ones(1, 3, 1, 3)  # white everywhere, only the middle pixel painted (opaque)
    alpha = torch.tensor([[[[0.0, 1.0, 0.2]]]])
    assert hole_from_mask(picture(rgb, alpha))[0, 0].tolist() == [[False, True, False]]


def test_the_hole_of_alpha_is_the_transparent_pixels() -> None:
    image = picture(torch.rand(1, 3, 1, 3), torch.tensor([[[[0.0, 0.6, 0.4]]]]), name="cut.png")
    assert hole_from_alpha(image)[0, 0].tolist() == [[True, False, True]]
    with pytest.raises(InputError, match="cut.png: has no alpha channel"):
        hole_from_alpha(picture(torch.rand(1, 3, 2, 2), name="cut.png"))


def test_boxes_are_clipped_and_a_box_off_the_image_names_its_size() -> None:
    hole = hole_from_boxes(4, 6, [Box(4, 2, 10, 10), Box(-1, 0, 2, 1)], name="p.png")
    assert hole[0, 0].nonzero().tolist() == [[0, 0], [2, 4], [2, 5], [3, 4], [3, 5]]
    with pytest.raises(InputError, match=r"p.png: --box 7,0,2,2 lies outside the 6x4 image"):
        hole_from_boxes(4, 6, [Box(7, 0, 2, 2)], name="p.png")


@pytest.mark.parametrize(("text", "problem"), [
    ("1,2,3", "give four integers"), ("1,2,0,4", "must be positive"), ("9999999,0,1,1", "within"),
])
def test_bad_boxes_are_usage_errors(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        parse_box(text)
    assert parse_box(" 3, -4,5,6 ") == Box(3, -4, 5, 6)


def test_weights_are_one_in_the_grown_hole_fall_over_the_feather_and_are_exactly_zero_beyond() -> None:
    hole = torch.zeros(1, 1, 41, 41, dtype=torch.bool)
    hole[..., 20, 20] = True
    weights = blend_weights(hole, dilate=3, feather=5)[0, 0]
    row = weights[20, 20:].tolist()  # distance 0, 1, 2, ... from the hole
    assert row[:4] == [1.0] * 4  # within 3 px: the grown hole
    band = row[4:9]  # 4 to 8 px away: the feather, falling
    assert all(1 > a > b > 0 for a, b in zip(band, band[1:], strict=False)) and band[-1] > 0
    assert row[9:] == [0.0] * (len(row) - 9)  # beyond 3 + 5 px: untouched
    distance = torch.cdist(torch.cartesian_prod(torch.arange(41.0), torch.arange(41.0)),
                           torch.tensor([[20.0, 20.0]])).view(41, 41)
    assert bool(((weights > 0) == (distance <= 8)).all())  # Euclidean, not a square


def test_without_dilate_or_feather_the_weights_are_the_hole() -> None:
    hole = random_hole(64, 48, generator=torch.Generator().manual_seed(1))
    assert torch.equal(blend_weights(hole), hole.float())
    assert not bool(blend_weights(torch.zeros(1, 1, 5, 5, dtype=torch.bool)).any())


def test_resizing_a_hole_keeps_half_covered_pixels_when_shrinking() -> None:
    hole = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    hole[..., :2, :1] = True  # half of the top-left 2x2 cell
    assert resize_hole(hole, 2, 2)[0, 0].tolist() == [[True, False], [False, False]]
    assert resize_hole(hole, 8, 8).sum() == 4 * int(hole.sum())


def test_far_apart_holes_get_their_own_crops_with_context_and_near_ones_share_one() -> None:
    area = torch.zeros(1, 1, 1000, 1500, dtype=torch.bool)
    area[..., 100:140, 100:120] = True  # 40 px tall: margins of 20 px, at least 32
    area[..., 800:900, 1300:1400] = True  # 100 px: margins of 50 px
    area[..., 800:810, 1420:1430] = True  # 20 px away from the last: the same crop, 130 px wide
    regions = fill_regions(area, context=0.5, min_margin=32)
    assert regions == [Region(68, 68, 172, 152), Region(800 - 65, 1300 - 65, 900 + 65, 1430 + 65)]
    assert all(not a.overlaps(b) for a in regions for b in regions if a is not b)


def test_a_crop_at_the_border_is_moved_inward_to_keep_its_context() -> None:
    area = torch.zeros(1, 1, 200, 200, dtype=torch.bool)
    area[..., 0:10, 190:200] = True
    [region] = fill_regions(area, context=0.5, min_margin=32)
    assert (region.top, region.bottom, region.right) == (0, 74, 200) and region.width == 74


def test_crops_that_would_overlap_are_merged() -> None:
    area = torch.zeros(1, 1, 400, 400, dtype=torch.bool)
    area[..., 100:200, 100:140] = True
    area[..., 100:200, 220:260] = True  # 80 px apart: apart for grouping, but their margins (50) overlap
    [region] = fill_regions(area, context=0.5, min_margin=32)
    assert region.left <= 100 - 50 and region.right >= 260 + 50


def test_random_holes_are_seeded_strokes_and_boxes_within_the_coverage() -> None:
    holes = [random_hole(128, 96, generator=torch.Generator().manual_seed(seed)) for seed in range(40)]
    coverage = [float(hole.float().mean()) for hole in holes]
    assert all(0.05 <= share <= 0.25 for share in coverage), coverage
    again = random_hole(128, 96, generator=torch.Generator().manual_seed(7))
    assert torch.equal(again, holes[7])
    assert len({hole.numpy().tobytes() for hole in holes}) == 40
    boxes = random_hole(100, 100, generator=torch.Generator().manual_seed(0), kind="boxes", coverage=(0.1, 0.2))
    rows, cols = boxes[0, 0].any(1), boxes[0, 0].any(0)  # boxes only: the hole is a union of rectangles
    assert 0.1 <= float(boxes.float().mean()) <= 0.2 and bool(rows.any() and cols.any())
    assert not math.isnan(float(boxes.float().mean()))
