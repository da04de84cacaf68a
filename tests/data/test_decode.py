"""Every image mode a user may bring decodes to the right 8-bit RGB value."""
from __future__ import annotations

import numpy as np
from PIL import Image

from debias.data.manifest import load_image
from debias.data.pack import pack


def _save(tmp_path, name, im, **kw):
    im.save(tmp_path / name, **kw)
    return name


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    a = np.full((8, 8), 32896, np.uint16)  # 32896 / 257 = 128
    name = _save(tmp_path, "g16.png", Image.fromarray(a))
    assert Image.open(tmp_path / name).mode.startswith("I")
    out = load_image(tmp_path, name, None)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out == 128).all()


def test_8_bit_grayscale_palette_rgba_and_cmyk(tmp_path):
    cases = {
        "l.png": (Image.new("L", (4, 4), 77), (77, 77, 77)),
        "la.png": (Image.new("LA", (4, 4), (77, 10)), (77, 77, 77)),
        "rgba.png": (Image.new("RGBA", (4, 4), (10, 200, 30, 5)), (10, 200, 30)),  # alpha dropped, colour kept
        "cmyk.jpg": (Image.new("CMYK", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
        "cmyk.tif": (Image.new("CMYK", (4, 4), (255, 0, 0, 0)), (0, 255, 255)),
    }
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 12, 34, 56] + [0] * 762)
    cases["p.png"] = (pal, (12, 34, 56))
    palt = pal.copy()
    palt.info["transparency"] = 0
    cases["pt.png"] = (palt, (12, 34, 56))
    for name, (im, rgb) in cases.items():
        _save(tmp_path, name, im, **({"transparency": 0} if name == "pt.png" else {}))
        out = load_image(tmp_path, name, None)
        assert out.shape == (4, 4, 3), name
        assert np.abs(out.astype(int) - rgb).max() <= 1, (name, out[0, 0])


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((4, 8, 3), np.uint8)
    a[:, :4] = 255  # left half white, 8 wide and 4 high
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    out = load_image(tmp_path, "o.jpg", None)
    assert out.shape == (8, 4, 3)  # upright: 4 wide, 8 high
    assert out[:3].mean() > 200 and out[-3:].mean() < 50  # the white half is now on top


def test_packing_a_16_bit_png_keeps_its_value(tmp_path):
    import pandas as pd

    Image.fromarray(np.full((10, 10), 65535 // 4, np.uint16)).save(tmp_path / "a.png")  # 16383 / 257 = 63.7 -> 64
    pd.DataFrame({"image": ["a.png"], "label": [1], "split": ["test"]}).to_csv(tmp_path / "manifest.csv", index=False)
    pack(tmp_path, size=8, workers=1)
    arr = np.load(tmp_path / "images.npy")
    assert arr.shape == (1, 8, 8, 3) and np.abs(arr.astype(int) - 64).max() <= 1
