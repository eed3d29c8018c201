"""Reading user images of every kind, and the one preprocessing step, on real files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.data import ImageDataset, load_digits
from trainer.folders import IMAGE_SUFFIXES
from trainer.images import (
    MNIST_FILL,
    ImageError,
    fit_fraction,
    ink_on_dark,
    load_image_for,
    preprocess_image,
    read_image,
)

DIGITS = load_digits()


def msg(e: pytest.ExceptionInfo) -> str:
    return str(e.value)


def scanned(digit: np.ndarray, zoom: int = 20, margin: int = 80) -> np.ndarray:
    """A digit as a black-on-white scan: upscaled, inverted, with white paper on the right."""
    big = 1 - np.kron(digit, np.ones((zoom, zoom), np.float32))
    return np.pad(big, ((0, 0), (0, margin)), constant_values=1)


# ---------------------------------------------------------------- preprocessing

def test_scanned_digit_comes_back_near_the_original():
    fill = fit_fraction(DIGITS)
    assert fill == pytest.approx(1.0)
    x = DIGITS.as_float(np.arange(100)).reshape(-1, 8, 8)
    errors = np.array([np.abs(preprocess_image(scanned(d), (8, 8), fill=fill) - d).mean()
                       for d in x])
    # Most come back exactly; the rest sit one pixel aside, where the dataset's own centring
    # rounded a half-pixel tie the other way.
    assert np.mean(errors) < 0.04 and np.mean(errors < 0.02) > 0.8


def test_scanned_digit_through_a_png_file(tmp_path):
    d = DIGITS.as_float(np.array([5])).reshape(8, 8)
    Image.fromarray(np.rint(scanned(d) * 255).astype(np.uint8)).save(tmp_path / "scan.png")
    out, notes = load_image_for(tmp_path / "scan.png", DIGITS)
    assert out.shape == (8, 8) and out.dtype == np.float32 and notes == []
    assert np.abs(out - d).mean() < 0.03


def test_aspect_ratio_is_kept():
    bar = np.ones((200, 400), np.float32)
    bar[20:180, 190:206] = 0  # a tall thin black bar (160 x 16) on white
    out = preprocess_image(bar, (28, 28), fill=MNIST_FILL)
    rows, cols = np.flatnonzero(out.max(1) > 0.5), np.flatnonzero(out.max(0) > 0.5)
    assert len(rows) == 20 and len(cols) == 2  # 10:1 kept, not stretched to a square
    assert 0 <= out.min() and out.max() <= 1
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1 and abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1


def test_centre_of_mass_lands_mid_frame_like_mnist():
    img = np.zeros((100, 100), np.float32)
    img[5:40, 60:80] = 1  # white on black, far off centre
    out = preprocess_image(img, (28, 28), fill=MNIST_FILL)
    ys, xs = np.indices(out.shape)
    com = (ys * out).sum() / out.sum(), (xs * out).sum() / out.sum()
    assert np.allclose(com, 13.5, atol=0.6)
    assert out.max() == pytest.approx(1)


def test_an_image_already_in_mnist_format_stays_put():
    img = np.zeros((100, 60), np.float32)
    img[20:80, 10:30] = 1
    once = preprocess_image(img, (28, 28))
    assert np.abs(preprocess_image(once, (28, 28)) - once).mean() < 0.01


def test_grey_paper_and_faint_ink_are_normalised():
    img = np.full((60, 60), 0.8, np.float32)
    img[15:45, 25:35] = 0.5  # faint pencil on grey paper
    out = preprocess_image(img, (28, 28))
    assert out[0, 0] == 0 and out.max() == pytest.approx(1)


@pytest.mark.parametrize("value", [0.0, 0.4, 1.0])
def test_blank_image_gives_zeros(value):
    out = preprocess_image(np.full((30, 20), value, np.float32), (28, 28))
    assert out.shape == (28, 28) and not out.any()


def test_fill_none_keeps_the_whole_frame():
    img = np.zeros((56, 28), np.float32)
    img[:, 10:18] = 1
    out = preprocess_image(img, (28, 28), fill=None)
    assert out.shape == (28, 28)
    assert out[:, 7:21].any() and not out[:, :7].any() and not out[:, 21:].any()  # 14 wide


def test_noise_and_photos_are_not_inverted():
    noise = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    assert ink_on_dark(noise)[1] is False
    paper = np.ones((40, 40), np.float32)
    paper[10:30, 18:22] = 0
    assert ink_on_dark(paper)[1] is True


def test_fit_fraction_of_an_mnist_style_dataset():
    rng = np.random.default_rng(1)
    images = []
    for _ in range(40):
        h, w = rng.integers(60, 120), rng.integers(20, 120)
        images.append(preprocess_image(np.pad(np.ones((h, w), np.float32), 20), (28, 28)))
    ds = ImageDataset(pixels=np.stack(images).astype(np.float32), scale=1.0, name="t",
                      source="t")
    assert fit_fraction(ds) == pytest.approx(MNIST_FILL, abs=0.04)


# ---------------------------------------------------------------- reading files

def test_plain_grey_png(tmp_path):
    a = np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5)
    Image.fromarray(a).save(tmp_path / "g.png")
    grey, notes = read_image(tmp_path / "g.png")
    assert grey.dtype == np.float32 and np.allclose(grey, a / 255) and notes == []


def test_rgba_dark_stroke_on_transparent_goes_onto_white(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)  # black everywhere, only the stroke is opaque
    rgba[5:15, 9:11, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "stroke.png")
    grey, notes = read_image(tmp_path / "stroke.png")
    assert notes == ["transparency flattened onto white (the visible content is dark)"]
    assert grey[0, 0] == 1 and grey[10, 10] == 0
    out = preprocess_image(grey, (28, 28))
    assert out[0, 0] == 0 and out.max() == 1  # bright stroke on black, like MNIST


def test_la_light_content_goes_onto_black(tmp_path):
    la = np.zeros((20, 20, 2), np.uint8)
    la[..., 0] = 255
    la[5:15, 9:11, 1] = 255
    Image.fromarray(la, "LA").save(tmp_path / "light.png")
    grey, notes = read_image(tmp_path / "light.png")
    assert notes == ["transparency flattened onto black (the visible content is light)"]
    assert grey[0, 0] == 0 and grey[10, 10] == 1


def test_palette_with_transparency(tmp_path):
    p = Image.new("P", (10, 10), 0)
    p.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    p.paste(1, (3, 3, 7, 7))
    p.save(tmp_path / "pal.png", transparency=1)  # the white square is see-through
    grey, notes = read_image(tmp_path / "pal.png")
    assert notes == ["transparency flattened onto white (the visible content is dark)"]
    assert grey[5, 5] == 1 and grey[0, 0] == 0


def test_palette_without_transparency(tmp_path):
    Image.fromarray(np.eye(6, dtype=np.uint8) * 255).convert("P").save(tmp_path / "p.gif")
    grey, notes = read_image(tmp_path / "p.gif")
    assert np.allclose(grey, np.eye(6), atol=1e-6) and notes == []


def test_cmyk(tmp_path):
    Image.new("CMYK", (6, 4), (0, 0, 0, 255)).save(tmp_path / "k.tif")
    grey, notes = read_image(tmp_path / "k.tif")
    assert grey.shape == (4, 6) and np.allclose(grey, 0, atol=0.02) and notes == []


def test_16_bit_grey(tmp_path):
    a = np.array([[0, 32768], [65535, 1000]], np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.png")
    grey, notes = read_image(tmp_path / "deep.png")
    assert notes == ["16-bit greyscale: scaled to [0, 1]"]
    assert np.allclose(grey, a / 65535, atol=1e-6)


def test_animated_gif_uses_first_frame(tmp_path):
    first = Image.fromarray(np.full((8, 8), 255, np.uint8)).convert("P")
    second = Image.fromarray(np.zeros((8, 8), np.uint8)).convert("P")
    first.save(tmp_path / "anim.gif", save_all=True, append_images=[second], duration=100)
    grey, notes = read_image(tmp_path / "anim.gif")
    assert notes == ["animated: used the first frame of 2"] and grey.min() == 1


def test_exif_orientation_applied(tmp_path):
    a = np.zeros((4, 8), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(a).save(tmp_path / "phone.jpg", exif=exif)
    grey, notes = read_image(tmp_path / "phone.jpg")
    assert grey.shape == (8, 4) and notes == ["rotated upright as its EXIF orientation says"]


def test_all_suffixes_are_readable(tmp_path):
    assert {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
            ".ppm"} == set(IMAGE_SUFFIXES)
    for suffix in IMAGE_SUFFIXES:
        img = Image.new("RGB" if suffix == ".ppm" else "L", (5, 5), "white")
        img.save(tmp_path / f"i{suffix}")
        grey, _ = read_image(tmp_path / f"i{suffix}")
        assert grey.shape == (5, 5) and grey.min() > 0.9, suffix


# ---------------------------------------------------------------- bad files

def test_decompression_bomb_refused(tmp_path):
    Image.new("L", (40, 30)).save(tmp_path / "bomb.png")
    with pytest.raises(ImageError) as e:
        read_image(tmp_path / "bomb.png", max_pixels=1000)
    assert msg(e) == (f"{tmp_path / 'bomb.png'}: too large: 40 x 30 pixels is over the "
                      "1,000-pixel limit (possible decompression bomb)")


def test_text_file_named_png(tmp_path):
    (tmp_path / "fake.png").write_text("I am not a picture")
    with pytest.raises(ImageError) as e:
        read_image(tmp_path / "fake.png")
    assert msg(e) == f"{tmp_path / 'fake.png'}: not an image (unknown or unsupported file type)"


def test_zero_bytes_missing_and_folder(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    cases = {tmp_path / "zero.png": "empty file (0 bytes)",
             tmp_path / "gone.png": "no such file",
             tmp_path: "is a folder, not an image"}
    for path, reason in cases.items():
        with pytest.raises(ImageError) as e:
            read_image(path)
        assert msg(e) == f"{path}: {reason}" and e.value.reason == reason


@pytest.mark.parametrize("fmt, cut", [("PNG", 40), ("JPEG", 60)])
def test_truncated_image(tmp_path, fmt, cut):
    rng = np.random.default_rng(0)
    good = tmp_path / f"good.{fmt.lower()}"
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(good, fmt)
    bad = tmp_path / f"cut.{fmt.lower()}"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) * cut // 100])
    with pytest.raises(ImageError) as e:
        read_image(bad)
    assert msg(e).startswith(f"{bad}: corrupt or truncated image (")


def _read_as_unprivileged(path) -> str:
    """read_image(path)'s error message, read by a forked child that dropped root (root
    reads every file whatever its mode). PIL's plugins load first: the child may not be
    able to reach site-packages any more."""
    Image.init()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest, no exceptions escaping, just the message
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            try:
                read_image(path)
                out = "read it"
            except ImageError as e:
                out = str(e)
            except Exception as e:  # noqa: BLE001 (report anything to the parent)
                out = f"{type(e).__name__}: {e}"
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode()
    os.waitpid(pid, 0)
    return message


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("locked", ["file", "folder"])
def test_permission_denied(locked):
    import shutil
    import tempfile

    # Under /tmp (world-traversable), not pytest's private tmp_path.
    folder = Path(tempfile.mkdtemp(prefix="latent-explorer-perm-"))
    try:
        folder.chmod(0o755)
        p = folder / "locked.png"
        Image.new("L", (3, 3)).save(p)
        if locked == "file":
            p.chmod(0)
        else:
            folder.chmod(0)  # the file is fine, but its folder cannot be entered
        if os.geteuid() == 0:
            message = _read_as_unprivileged(p)
        else:
            with pytest.raises(ImageError) as e:
                read_image(p)
            message = msg(e)
        assert message == f"{p}: permission denied"
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_image_error_is_a_data_error():
    from trainer.data import DataError

    assert issubclass(ImageError, DataError)
    assert str(ImageError(Path("a.png"), "why")) == "a.png: why"
