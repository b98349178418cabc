"""read_image at its decision points, on small files made on the fly: which decoder gives the
pixels (OpenCV for JPEG and MPO, so the Nano's libjpeg 9 Pillow cannot move them; Pillow for every
other format, including those OpenCV cannot read), the EXIF orientation (each value, none, and
values outside 1..8), the megapixel limit on a JPEG, damaged JPEGs, and grey, CMYK, 16-bit and
alpha files."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from runtime.errors import ImageError
from runtime.images import read_image


def pixels(h=37, w=53, seed=0):
    """Smooth colour pixels (JPEG keeps them close), not square, so every turn shows."""
    rng = np.random.default_rng(seed)
    small = (rng.random((h // 4 + 1, w // 4 + 1, 3)) * 255).astype(np.uint8)
    return np.ascontiguousarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))


def save(path, array, fmt=None, **kw):
    Image.fromarray(array).save(str(path), format=fmt, **kw)
    return str(path)


def other_pillow_decoder(monkeypatch):
    """Pillow still checks the file, then its pixels are not libjpeg-turbo's: a stand-in for the
    Nano's Pillow 8.4.0 (IJG libjpeg 9), whose JPEG pixels differ by up to 50 levels."""
    real_load = ImageFile.ImageFile.load

    def load(self):
        out = real_load(self)
        if self.format in ("JPEG", "MPO"):
            self.im = self.im.point([255 - v for v in range(256)] * len(self.getbands()), None)
        return out

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def opencv_reference(path):
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)


@pytest.mark.parametrize("kind", ["rgb", "grey", "progressive", "mpo"])
def test_jpeg_and_mpo_pixels_come_from_opencv_whatever_pillow_decodes(tmp_path, monkeypatch,
                                                                      kind):
    rgb = pixels()
    if kind == "grey":
        path = save(tmp_path / "g.jpg", rgb[:, :, 1])
    elif kind == "mpo":  # a phone photo with a second picture (depth, HDR gain map)
        path = str(tmp_path / "m.jpg")
        Image.fromarray(rgb).save(path, format="MPO", save_all=True,
                                  append_images=[Image.fromarray(rgb[::-1].copy())])
    else:
        path = save(tmp_path / "c.jpg", rgb, "JPEG", progressive=kind == "progressive")
    expected = opencv_reference(path)
    other_pillow_decoder(monkeypatch)
    out = read_image(path)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8 and out.shape == (37, 53, 3) and out.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_formats_opencv_cannot_read_are_read_by_pillow(tmp_path, mode):
    rgb = pixels(9, 14)
    array = rgb if mode == "RGB" else rgb[:, :, 0]
    path = save(tmp_path / "x.tga", array)
    assert cv2.imread(path) is None  # OpenCV has no TGA reader
    out = read_image(path)
    expected = rgb[:, :, ::-1] if mode == "RGB" else np.repeat(array[..., None], 3, axis=2)
    np.testing.assert_array_equal(out, expected)


def _pillow_turned(path):
    with Image.open(path) as img:
        rgb = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


@pytest.mark.parametrize("ext", ["jpg", "png"])
@pytest.mark.parametrize("orientation", [None, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_every_exif_orientation_turns_as_pillow_does(tmp_path, orientation, ext):
    img = Image.fromarray(pixels())
    path = str(tmp_path / ("o." + ext))
    if orientation is None:
        img.save(path)
    else:
        exif = img.getexif()
        exif[0x0112] = orientation
        img.save(path, exif=exif.tobytes())
    out = read_image(path)
    np.testing.assert_array_equal(out, _pillow_turned(path))  # host Pillow: libjpeg-turbo too
    turned = orientation in (5, 6, 7, 8)
    assert out.shape == ((53, 37, 3) if turned else (37, 53, 3)) and out.flags["C_CONTIGUOUS"]


def test_the_megapixel_limit_is_checked_before_a_jpeg_is_decoded(tmp_path):
    at = save(tmp_path / "at.jpg", np.zeros((1000, 1000, 3), np.uint8))
    over = save(tmp_path / "over.jpg", np.zeros((1000, 1001, 3), np.uint8))  # one column more
    assert read_image(at, 1.0).shape == (1000, 1000, 3)
    with pytest.raises(ImageError) as e:
        read_image(over, 1.0)
    assert str(e.value) == (
        "Image %s is 1001x1000 (1 MP), over the 1 MP limit (infer.max_megapixels): downscale it "
        "first or raise the limit." % over)
    assert read_image(over, None).shape == (1000, 1001, 3)


@pytest.mark.parametrize("cut,reason", [(0.5, "it is truncated"), (0.999, "it is truncated"),
                                        (0.02, "it is not a readable image")])
def test_a_truncated_jpeg_is_refused_naming_the_reason(tmp_path, cut, reason):
    noise = (np.random.default_rng(1).random((96, 128, 3)) * 255).astype(np.uint8)
    data = open(save(tmp_path / "ok.jpg", noise, quality=95), "rb").read()
    path = str(tmp_path / "bad.jpg")
    open(path, "wb").write(data[: int(len(data) * cut)])  # 0.02: not even the whole header
    with pytest.raises(ImageError) as e:
        read_image(path)
    assert str(e.value) == ("Image %s cannot be decoded (%s): replace it or remove it from the "
                            "input." % (path, reason))


def test_a_jpeg_opencv_refuses_after_pillow_accepted_it_is_one_sentence(tmp_path, monkeypatch):
    path = save(tmp_path / "y.jpg", pixels(8, 8))
    monkeypatch.setattr(cv2, "imdecode", lambda *a: None)
    with pytest.raises(ImageError) as e:
        read_image(path)
    assert "cannot be decoded (it is not a readable image)" in str(e.value)


@pytest.mark.parametrize(
    "name,make,expected",
    [
        ("g16.png", lambda: Image.new("I;16", (5, 3), 1000), [4, 4, 4]),  # 1000/65535*255
        ("a.png", lambda: Image.new("RGBA", (5, 3), (10, 20, 30, 0)), [30, 20, 10]),
        ("la.png", lambda: Image.new("LA", (5, 3), (50, 9)), [50, 50, 50]),
        ("p.png", lambda: Image.new("RGB", (5, 3), (10, 20, 30)).quantize(4), [30, 20, 10]),
        ("b.png", lambda: Image.new("1", (5, 3), 1), [255, 255, 255]),
        ("c.tif", lambda: Image.new("CMYK", (5, 3), (0, 0, 0, 255)), [0, 0, 0]),
        ("c.jpg", lambda: Image.new("CMYK", (5, 3), (0, 0, 0, 0)), [255, 255, 255]),
    ],
)
def test_grey_sixteen_bit_alpha_palette_and_cmyk_files_become_bgr8(tmp_path, name, make,
                                                                    expected):
    path = str(tmp_path / name)
    make().save(path)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (3, 5, 3) and out.flags["C_CONTIGUOUS"]
    assert (out == expected).all(axis=2).all(), out[0, 0]
