"""The CPU pre-processing op against an oracle written from Pillow and the HF formula: BGR ->
RGB, Pillow's bilinear resize (in the pass order of the Pillow the golden files came from), then
x * scale, minus mean, over std, as a 1x3xHxW tensor."""

import numpy as np
import pytest
from PIL import Image

from runtime import reference

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def oracle(image_bgr, h, w, scale=1.0 / 255):
    rgb = np.asarray(
        Image.fromarray(np.ascontiguousarray(image_bgr[..., ::-1])).resize((w, h), Image.BILINEAR)
    )
    x = rgb.astype(np.float32) * np.float32(scale)
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return x.transpose(2, 0, 1)[None]


def pillow_order():
    import PIL

    return "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "horizontal_first"


@pytest.mark.parametrize(
    "shape,out",
    [
        ((480, 640), (256, 256)),
        ((1080, 1920), (512, 512)),
        ((37, 53), (64, 48)),
        ((300, 20), (40, 40)),
        ((64, 64), (64, 64)),
        ((1000, 30), (100, 29)),
        ((5, 700), (3, 699)),
    ],
)
def test_preprocess_is_the_hf_processor_bit_for_bit(shape, out):
    rng = np.random.RandomState(sum(shape))
    image = rng.randint(0, 256, shape + (3,)).astype(np.uint8)
    got = reference.preprocess(image, out[0], out[1], MEAN, STD, pass_order=pillow_order())
    want = oracle(image, *out)
    assert got.dtype == np.float32 and got.shape == (1, 3) + out and got.flags["C_CONTIGUOUS"]
    assert np.array_equal(got, want)


def test_preprocess_keeps_channels_apart_and_in_rgb_order():
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30  # B, G, R
    got = reference.preprocess(image, 4, 4, [0, 0, 0], [1, 1, 1], scale=1.0)
    assert [float(got[0, c, 0, 0]) for c in range(3)] == [30.0, 20.0, 10.0]
    half = reference.preprocess(image, 4, 4, [1, 2, 3], [2, 4, 5], scale=0.5, dtype=np.float64)
    assert half.dtype == np.float64
    f = np.float32
    assert [float(half[0, c, 1, 1]) for c in range(3)] == [
        float(v) for v in ((f(15) - f(1)) / f(2), (f(10) - f(2)) / f(4), (f(5) - f(3)) / f(5))
    ]


@pytest.mark.parametrize(
    "in_hw,out_hw,pillow13,horizontal",
    [
        (
            (1000, 100),
            (100, 100),
            False,
            True,
        ),  # height shrinks by 900, width by 0: vertical first on 13
        ((1000, 600), (100, 100), True, True),  # 900 > 2 * 500 is false: horizontal first
        (
            (1000, 550),
            (100, 100),
            True,
            True,
        ),  # 900 > 2 * 450 is false (the edge): horizontal first
        ((1000, 549), (100, 100), False, True),  # 900 > 2 * 449: vertical first
        ((100, 1000), (100, 10), True, True),  # height unchanged: horizontal first
        ((100, 100), (200, 10), True, True),  # height grows: horizontal first
        ((100, 100), (100, 200), True, True),  # height kept, width grows: horizontal first
        ((101, 100), (100, 100), False, True),  # height shrinks by 1, width kept: vertical first
        ((100, 100), (100, 200), True, True),  # height kept, width grows: horizontal first
        ((101, 100), (100, 100), False, True),  # height shrinks by 1, width kept: vertical first
    ],
)
def test_the_pass_order_of_each_pillow_generation(in_hw, out_hw, pillow13, horizontal):
    assert (
        reference.horizontal_first(in_hw[0], in_hw[1], out_hw[0], out_hw[1], "pillow13") is pillow13
    )
    assert (
        reference.horizontal_first(in_hw[0], in_hw[1], out_hw[0], out_hw[1], "horizontal_first")
        is horizontal
    )


def test_the_pass_order_changes_the_pixels_where_it_should():
    rng = np.random.RandomState(3)
    image = rng.randint(0, 256, (1000, 100, 3)).astype(np.uint8)
    a = reference.resize_fixed_point(image, 100, 97, "pillow13")
    b = reference.resize_fixed_point(image, 100, 97, "horizontal_first")
    assert a.shape == b.shape == (100, 97, 3) and not np.array_equal(a, b)
    assert np.array_equal(
        a, np.asarray(Image.fromarray(image).resize((97, 100), Image.BILINEAR))
    ) == (pillow_order() == "pillow13")


def test_resample_coeffs_are_pillows_triangle_filter_in_fixed_point():
    one = 1 << reference.PRECISION_BITS
    bounds, weights = reference.resample_coeffs(4, 2)  # halve: support 2 input pixels
    assert bounds.tolist() == [[0, 3], [1, 3]] and weights.shape == (2, 5)
    third = [0.75 / 1.75, 0.75 / 1.75, 0.25 / 1.75]  # triangle at distances 0.5, 0.5, 1.5 (of 2)
    assert weights[0].tolist() == [int(0.5 + v * one) for v in third] + [0, 0]
    assert weights[1].tolist() == [int(0.5 + v * one) for v in third[::-1]] + [0, 0]
    up_bounds, up = reference.resample_coeffs(2, 4)  # double: support 1, weights 3/4 and 1/4
    assert up_bounds.tolist() == [[0, 1], [0, 2], [0, 2], [1, 1]] and up.shape == (4, 3)
    assert up.tolist() == [
        [one, 0, 0],
        [int(0.5 + 0.75 * one), int(0.5 + 0.25 * one), 0],
        [int(0.5 + 0.25 * one), int(0.5 + 0.75 * one), 0],
        [one, 0, 0],
    ]


def test_the_default_pass_order_is_pillow_13s_and_preprocess_passes_the_order_on():
    rng = np.random.RandomState(5)
    image = rng.randint(0, 256, (1000, 100, 3)).astype(np.uint8)
    assert reference.horizontal_first(1000, 100, 100, 97) is False
    plain = reference.resize_fixed_point(image, 100, 97)
    assert plain.dtype == np.uint8 and plain.shape == (100, 97, 3)
    assert np.array_equal(plain, reference.resize_fixed_point(image, 100, 97, "pillow13"))
    rgb = np.ascontiguousarray(image[..., ::-1])
    for order in ("pillow13", "horizontal_first"):
        x = reference.resize_fixed_point(rgb, 100, 97, order).astype(np.float32) * np.float32(
            1 / 255.0
        )
        want = ((x - np.float32(MEAN)) / np.float32(STD)).transpose(2, 0, 1)[None]
        assert np.array_equal(
            reference.preprocess(image, 100, 97, MEAN, STD, pass_order=order), want
        )
    assert np.array_equal(
        reference.preprocess(image, 100, 97, MEAN, STD),
        reference.preprocess(image, 100, 97, MEAN, STD, pass_order="pillow13"),
    )
    bounds, weights = reference.resample_coeffs(1000, 100)
    assert bounds.dtype == np.int32 and weights.dtype == np.int32
