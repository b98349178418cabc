"""JPEG pixels come from OpenCV (libjpeg-turbo) on every machine, so the Nano's Pillow 8.4.0
(IJG libjpeg 9) cannot shift the pre-processed tensor away from the golden input; EXIF
orientation is still applied exactly as Pillow's ImageOps.exif_transpose applies it."""
import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from runtime import images
from runtime.images import read_image


def _pillow_reference(path):
    with Image.open(path) as img:
        rgb = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    pixels = (rng.random((37, 53, 3)) * 255).astype(np.uint8)  # not square: turns show
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = orientation
    path = str(tmp_path / "o.jpg")
    img.save(path, exif=exif, quality=90)
    np.testing.assert_array_equal(read_image(path), _pillow_reference(path))


def test_jpeg_pixels_come_from_opencv_not_pillow(tmp_path, monkeypatch):
    """A Pillow whose JPEG decoder differs (as libjpeg 9 does) must not change what we read."""
    path = str(tmp_path / "x.jpg")
    Image.fromarray((np.random.default_rng(0).random((16, 24, 3)) * 255).astype(np.uint8)).save(
        path, quality=80)
    expected = cv2.imread(path, cv2.IMREAD_COLOR)
    real_load = Image.Image.load

    def other_decoder(self):
        out = real_load(self)
        self.im = Image.new(self.mode, self.size, (7, 7, 7)).im  # different pixels, same file
        return out

    monkeypatch.setattr(Image.Image, "load", other_decoder)
    np.testing.assert_array_equal(read_image(path), expected)


def test_cmyk_jpeg_still_goes_through_pillow(tmp_path):
    path = str(tmp_path / "c.jpg")
    Image.new("RGB", (8, 8), (10, 20, 30)).convert("CMYK").save(path)
    out = read_image(path)
    assert out.shape == (8, 8, 3)
    assert np.abs(out[4, 4].astype(int) - [30, 20, 10]).max() <= 3


def test_opencv_refusing_a_jpeg_pillow_accepted_is_one_sentence(tmp_path, monkeypatch):
    path = str(tmp_path / "y.jpg")
    Image.new("RGB", (8, 8)).save(path)
    monkeypatch.setattr(cv2, "imdecode", lambda *a: None)
    with pytest.raises(images.ImageError, match="cannot be decoded"):
        read_image(path)
