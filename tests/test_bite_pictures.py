"""The overlay, the palette and the legend against known pixel values: the palette is RGB and
OpenCV draws BGR, the alpha weighs the class colour, the legend lists the largest class first."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from runtime import palette as pal
from runtime.reference import blend
from runtime.segmenter import overlay

PALETTE = [[0, 0, 0], [200, 100, 0], [10, 220, 30]]  # RGB
LABELS = ["background", "orange", "green"]


def test_bgr_table_flips_each_rgb_colour():
    table = pal.bgr_table(PALETTE)
    assert table.dtype == np.uint8 and table.flags["C_CONTIGUOUS"]
    assert table.tolist() == [[0, 0, 0], [0, 100, 200], [30, 220, 10]]


@pytest.mark.parametrize(
    "alpha,expected", [(0.25, [8, 40, 73]), (1.0, [0, 100, 200]), (0.0, [10, 20, 30])]
)
def test_overlay_pixel_is_image_times_one_minus_alpha_plus_colour_times_alpha(alpha, expected):
    image = np.zeros((4, 4, 3), np.uint8)
    image[...] = (10, 20, 30)  # BGR
    mask = np.ones((4, 4), np.uint8)  # class 1, RGB (200, 100, 0)
    out = overlay(image, mask, alpha, LABELS, PALETTE)  # too small for a legend
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert out[2, 2].tolist() == expected
    assert (out == out[2, 2]).all()


def test_blend_rounds_half_up_and_clips():
    image = np.full((1, 2, 3), 255, np.uint8)
    mask = np.array([[1, 2]], np.uint8)
    out = blend(image, mask, pal.bgr_table(PALETTE), 0.5)
    assert out.tolist() == [[[128, 178, 228], [143, 238, 133]]]


def legend_case():
    """A 400x800 image: class 2 covers most, then class 0, then class 1 (ids not in area order)."""
    mask = np.full((400, 800), 2, np.uint8)
    mask[:, :200] = 0
    mask[:, 200:300] = 1
    return np.full((400, 800, 3), 128, np.uint8), mask


def test_classes_by_area_is_largest_first_and_stable_on_ties():
    _, mask = legend_case()
    assert pal.classes_by_area(mask) == [(2, 400 * 500), (0, 400 * 200), (1, 400 * 100)]
    tie = np.array([[3, 1, 1, 3]], np.uint8)
    assert pal.classes_by_area(tie) == [(1, 2), (3, 2)]


def test_legend_swatches_are_in_area_order_in_bgr():
    image, mask = legend_case()
    out = pal.draw_legend(image.copy(), mask, LABELS, PALETTE)
    scale = pal.legend_scale(800)
    row = int(26 * scale) + 4
    swatches = [out[8 + row * k + row // 2, 8 + (row - 6) // 2].tolist() for k in range(3)]
    assert swatches == [[30, 220, 10], [0, 0, 0], [0, 100, 200]]
    assert out[8 + row * 3 + row // 2, 12].tolist() == [128, 128, 128]  # no fourth row
    assert (out[200:, 400:] == 128).all()  # the legend stays top-left
    assert (out[6, 6] == 0).all()  # its black box


def test_legend_is_left_out_where_it_does_not_fit():
    image = np.full((30, 800, 3), 128, np.uint8)
    mask = np.tile(np.arange(3, dtype=np.uint8), (30, 267))[:, :800]
    assert (pal.draw_legend(image.copy(), mask, LABELS, PALETTE) == 128).all()
    narrow = np.full((400, 202, 3), 128, np.uint8)  # box 195 px + 8 px margin > 202
    assert (
        pal.draw_legend(narrow.copy(), np.zeros((400, 202), np.uint8), LABELS, PALETTE) == 128
    ).all()


def test_legend_shows_at_most_max_rows():
    image = np.full((400, 800, 3), 128, np.uint8)
    mask = np.repeat(np.arange(3, dtype=np.uint8), 800 * 400 // 3 + 1)[: 800 * 400].reshape(
        400, 800
    )
    row = int(26 * pal.legend_scale(800)) + 4
    out = pal.draw_legend(image.copy(), mask, LABELS, PALETTE, max_rows=2)
    assert (out[8 + row * 2 + row // 2, 12] == 128).all()
    assert out[8 + row * 1 + row // 2, 12].tolist() == [0, 100, 200]


def test_mask_png_keeps_class_ids_and_stores_the_palette_as_rgb(tmp_path):
    mask = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    data = pal.encode_mask_png(mask, PALETTE)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "P"
        assert img.getpalette()[:9] == [0, 0, 0, 200, 100, 0, 10, 220, 30]
    path = tmp_path / "m.png"
    path.write_bytes(data)
    decoded = pal.decode_mask_png(str(path))
    assert decoded.dtype == np.uint8 and decoded.tolist() == mask.tolist()


def test_palette_is_the_sidewalk_palette_then_deterministic_colours():
    assert pal.palette_rgb(3) == [[0, 0, 0], [216, 82, 24], [255, 255, 0]]
    long = pal.palette_rgb(40)
    assert len(long) == 40 and long[:35] == [list(c) for c in pal.SIDEWALK_PALETTE]
    assert long == pal.palette_rgb(40)
    assert all(len(c) == 3 and all(0 <= v <= 255 and isinstance(v, int) for v in c) for c in long)
    assert len(set(map(tuple, long[35:]))) == 5


def test_legend_text_names_each_class_with_its_share_inside_its_row(monkeypatch):
    import cv2

    calls = []
    real = cv2.putText

    def put_text(img, text, org, font, font_scale, color, thickness, line_type):
        calls.append((text, org, font, font_scale, color, thickness, line_type))
        return real(img, text, org, font, font_scale, color, thickness, line_type)

    monkeypatch.setattr(pal.cv2, "putText", put_text)
    image, mask = legend_case()
    mask[0, 0] = 7  # one pixel of a class past the labels: "<1%"
    out = pal.draw_legend(image.copy(), mask, LABELS, PALETTE + [[9, 9, 9]] * 5)
    assert [c[0] for c in calls] == ["green 62%", "background 25%", "orange 12%", "7 <1%"]
    scale = pal.legend_scale(800)
    row, box_w = int(26 * scale) + 4, int(260 * scale)
    for k, (text, (x, y), font, scale, color, thickness, line) in enumerate(calls):
        assert color == (255, 255, 255) and font == cv2.FONT_HERSHEY_SIMPLEX and line == cv2.LINE_AA
        (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
        assert 8 + row - 6 < x and x + tw <= 4 + box_w  # right of the swatch, inside the box
        assert 8 + row * k < y - th and y <= 8 + row * (k + 1)  # inside its own row
    box = out[4 : 8 + row * 4 + 1, 4 : 4 + box_w + 1]
    assert (box == 0).any() and (
        out[8 + row * 4 + 2, 4 : 4 + box_w] == 128
    ).all()  # box ends after row 4
    assert (out[4 : 8 + row * 4, 4 + box_w + 1] == 128).all()


@pytest.mark.parametrize(
    "w,h,fits",
    [
        (800, 400, True),
        (202, 400, False),  # box 195 px (scale 0.75, the smallest) + 8 px margin > 202
        (203, 400, True),
        (800, 23 * 4 - 1, False),
        (800, 23 * 4, True),
    ],
)
def test_legend_fits_or_is_left_out_at_the_edges(w, h, fits):
    image = np.full((h, w, 3), 128, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[:, : w // 2] = 1
    mask[0, w - 1] = 2  # three classes: needs 4 rows of 23 px at scale 0.75
    out = pal.draw_legend(image.copy(), mask, LABELS, PALETTE)
    assert (out != 128).any() == fits


@pytest.mark.parametrize("w,scale", [(1600, 1.0), (1800, 1.125), (3200, 1.25), (800, 0.75),
                                     (400, 0.75)])
def test_legend_scales_with_the_image_width_between_limits(w, scale):
    bg = [200, 10, 60]  # not grey: the antialiased text never matches it
    image = np.zeros((900, w, 3), np.uint8) + np.array(bg, np.uint8)
    mask = np.zeros((900, w), np.uint8)
    out = pal.draw_legend(image.copy(), mask, LABELS, PALETTE)
    row, box_w = int(26 * scale) + 4, int(260 * scale)
    is_bg = (out == bg).all(axis=2)
    assert not is_bg[4 : 8 + row + 1, 4 : 4 + box_w + 1].any()  # the box covers its area
    assert is_bg[8 + row + 1, 4 : 4 + box_w + 1].all()  # one row, then the image again
    assert is_bg[4 : 8 + row, 4 + box_w + 1].all() and (out[4, 4 : 4 + box_w + 1] == 0).all()
    swatch = out[8 + 2 : 8 + row - 4 + 1, 8 : 8 + row - 6 + 1]
    assert (swatch == 0).all() and (out[8 + 1, 8 : 8 + row - 6] == 0).all()
    assert (out[8 + row - 3, 8 : 8 + row - 6] == 0).all()


def test_legend_swatch_rectangles_are_exact():
    image = np.full((400, 800, 3), 128, np.uint8)
    mask = np.ones((400, 800), np.uint8)  # one class, swatch BGR (0, 100, 200)
    out = pal.draw_legend(image.copy(), mask, LABELS, PALETTE)
    row = int(26 * pal.legend_scale(800)) + 4
    ys, xs = np.nonzero((out == [0, 100, 200]).all(axis=2))
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (8 + 2, 8 + row - 4, 8, 8 + row - 6)
    box = np.nonzero((out[:, :, 0] == 0) & (out[:, :, 1] == 0) & (out[:, :, 2] == 0))
    assert (box[0].min(), box[0].max(), box[1].min(), box[1].max()) == (
        4,
        8 + row,
        4,
        4 + int(260 * pal.legend_scale(800)),
    )


# ---- reading images: any depth and mode -> BGR uint8, known values ------------------------

from runtime.errors import ImageError  # noqa: E402
from runtime.images import list_images, read_image, to_bgr8  # noqa: E402


@pytest.mark.parametrize(
    "mode,value,expected",
    [
        ("I;16", 65535, 255),
        ("I;16", 32768, 128),
        ("I;16", 257, 1),
        ("I;16", 0, 0),
        ("I", 200, 200),
        ("I", 1000, 4),
        ("F", 3.6, 4),
        ("F", -5.0, 0),
        ("F", 300.0, 255),
        ("L", 77, 77),
    ],
)
def test_grey_images_of_any_depth_become_three_equal_channels(mode, value, expected):
    img = Image.new(mode, (3, 2), value)
    out = to_bgr8(img)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3) and out.flags["C_CONTIGUOUS"]
    assert (out == expected).all(), out[0, 0]


def test_sixteen_bit_scaling_uses_the_full_range_even_when_dark():
    img = Image.new("I;16", (2, 1), 100)
    assert to_bgr8(img)[0, 0].tolist() == [0, 0, 0]  # 100/65535*255 = 0.39: dark, not 100


@pytest.mark.parametrize(
    "mode,value", [("RGB", (10, 20, 30)), ("RGBA", (10, 20, 30, 0)), ("CMYK", None), ("P", None)]
)
def test_colour_images_become_bgr_and_drop_alpha(mode, value):
    if mode == "CMYK":
        img = Image.new("RGB", (2, 2), (10, 20, 30)).convert("CMYK")
    elif mode == "P":
        img = Image.new("RGB", (2, 2), (10, 20, 30)).convert("P", palette=Image.ADAPTIVE)
    else:
        img = Image.new(mode, (2, 2), value)
    out = to_bgr8(img)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    assert np.abs(out[1, 1].astype(int) - [30, 20, 10]).max() <= 2, out[1, 1]


def test_read_image_applies_the_exif_rotation(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise
    path = str(tmp_path / "r.jpg")
    img.save(path, exif=exif.tobytes())
    out = read_image(path)
    assert out.shape == (40, 20, 3) and out[5, 5].tolist()[0] > 200  # BGR: blue is channel 0


@pytest.mark.parametrize(
    "content,needle",
    [
        (None, "does not exist: check the path"),
        (b"", "is empty (0 bytes)"),
        (b"x", "cannot be decoded (it is not a readable image)"),
        ("truncated", "cannot be decoded (it is truncated)"),
    ],
)
def test_unreadable_images_are_one_sentence_naming_the_file(tmp_path, content, needle):
    path = str(tmp_path / "bad.png")
    if content == "truncated":
        Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif content is not None:
        open(path, "wb").write(content)
    with pytest.raises(ImageError) as e:
        read_image(path)
    assert str(e.value).startswith("Image %s " % path) and needle in str(e.value), str(e.value)


def test_the_megapixel_check_counts_a_megapixel_as_one_million_pixels(tmp_path):
    path = str(tmp_path / "mp.png")
    Image.new("L", (1000, 1000)).save(path)
    with pytest.raises(ImageError) as e:
        read_image(path, 0.9999995)
    assert ("Image %s is 1000x1000 (1 MP), over the 1 MP limit" % path) in str(e.value)
    assert read_image(path, 1.0).shape == (1000, 1000, 3)


def test_list_images_keeps_images_sorted_by_name(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.txt", "d.webp", "e.JPEG", "f"):
        open(str(tmp_path / name), "w").write("x")
    assert [os.path.basename(p) for p in list_images(str(tmp_path))] == [
        "a.jpg",
        "b.PNG",
        "d.webp",
        "e.JPEG",
    ]


def test_legend_writes_white_text_in_each_row_with_exact_shares(monkeypatch):
    import cv2

    calls = []
    real = cv2.putText
    monkeypatch.setattr(
        pal.cv2, "putText", lambda *a: calls.append(a[1:]) or real(*a)
    )  # record, then draw
    mask = np.zeros((400, 800), np.uint8)
    flat = mask.reshape(-1)
    flat[:3200] = 1  # exactly 1 %
    flat[3200:8000] = 2  # 1.5 %: "2%"
    flat[8000:8100] = 3  # a class id equal to len(LABELS): shown by its number
    out = pal.draw_legend(
        np.full((400, 800, 3), 128, np.uint8), mask, LABELS, PALETTE + [[1, 2, 3]]
    )
    assert [c[0] for c in calls] == ["background 97%", "green 2%", "orange 1%", "3 <1%"]
    assert all(c[4:6] == ((255, 255, 255), 1) for c in calls)  # white, thin
    row = int(26 * 0.5) + 4
    for k in range(4):
        text = out[8 + row * k : 8 + row * (k + 1), 8 + row : 4 + int(260 * 0.5)]
        assert (text > 60).all(axis=2).sum() > 15, k  # the words are drawn into the image


def test_legend_shows_twelve_rows_by_default():
    mask = np.repeat(np.arange(20, dtype=np.uint8), 800 * 900 // 20).reshape(900, 800)
    out = pal.draw_legend(np.full((900, 800, 3), 128, np.uint8), mask, ["c"] * 20, [[9, 9, 9]] * 20)
    row = int(26 * pal.legend_scale(800)) + 4
    assert (out[8 + row * 12 - 2, 6] == 0).all() and (out[8 + row * 12 + 2, 6] == 128).all()


def test_classes_by_area_keeps_id_order_among_many_equal_areas():
    mask = np.repeat(np.arange(40, dtype=np.uint8)[::-1], 5)
    assert pal.classes_by_area(mask) == [(i, 5) for i in range(40)]
    counts = [5, 3] * 50  # ties among 100 classes: an unstable sort reorders them
    mask = np.repeat(np.arange(100, dtype=np.uint8), counts)
    assert pal.classes_by_area(mask) == [(i, 5) for i in range(0, 100, 2)] + [
        (i, 3) for i in range(1, 100, 2)
    ]
    assert pal.classes_by_area(np.zeros((0,), np.uint8)) == []


def test_mask_png_of_a_wide_integer_mask_and_its_zero_padded_palette(tmp_path):
    mask = np.array([[0, 1, 2]], np.int64)  # argmax output type
    data = pal.encode_mask_png(mask, PALETTE)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "P" and len(img.getpalette()) == 768
        assert img.getpalette()[9:] == [0] * (768 - 9)
    path = tmp_path / "m.png"
    path.write_bytes(data)
    assert pal.decode_mask_png(str(path)).tolist() == [[0, 1, 2]]


def test_the_extended_palette_is_the_same_everywhere():
    assert pal.palette_rgb(36)[35] == [47, 211, 38]  # seed 1234, colours 0..255
    extra = [v for c in pal.palette_rgb(256)[35:] for v in c]
    assert min(extra) == 0 and max(extra) <= 255


@pytest.mark.parametrize(
    "mode,value,expected",
    [
        ("I;16B", 65535, 255),
        ("I;16B", 33025, 129),
        ("I;16L", 33025, 129),
        ("I;16", 33025, 129),
        ("I", 255, 255),
        ("I", 256, 1),
        ("I", -5, 0),
        ("I", 70000, 255),
        ("I", 65792, 255),
    ],
)
def test_sixteen_and_thirty_two_bit_edges(mode, value, expected):
    out = to_bgr8(Image.new(mode, (2, 1), value))
    assert out.dtype == np.uint8 and (out == expected).all(), out[0, 0]
