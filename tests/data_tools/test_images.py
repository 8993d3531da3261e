"""Every bad input the collect issue lists, plus the conversions a real photo collection needs."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from data_tools.images import ImageConfig, ImageRejected, normalize_image
from tests.helpers import draw_image, encode

CONFIG = ImageConfig(max_side=256, min_side=32)


def reject_reason(raw: bytes, config: ImageConfig = CONFIG) -> str:
    with pytest.raises(ImageRejected) as info:
        normalize_image(raw, config)
    return info.value.reason


def decoded(raw: bytes, config: ImageConfig = CONFIG) -> Image.Image:
    result = normalize_image(raw, config)
    image = Image.open(io.BytesIO(result.data))
    image.load()
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries almost no data: the classic bomb shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_zero_byte_file():
    assert reject_reason(b"") == "empty_file"


def test_html_named_jpg_is_not_an_image():
    assert reject_reason(b"<html><body>404</body></html>") == "not_an_image"


def test_truncated_jpeg():
    raw = encode(draw_image(1, (400, 300)))
    assert reject_reason(raw[: len(raw) // 2]) == "decode_error"


def test_decompression_bomb_by_configured_limit():
    raw = encode(draw_image(2, (400, 300)))
    assert reject_reason(raw, ImageConfig(max_pixels=100_000)) == "decompression_bomb"


def test_decompression_bomb_caught_from_header_before_decoding():
    # 100k x 100k = 10^10 pixels: Pillow's own guard raises in open(); we report it, never decode it.
    assert reject_reason(png_header_only(100_000, 100_000)) == "decompression_bomb"
    assert (
        reject_reason(png_header_only(20_000, 20_000), ImageConfig(max_pixels=10_000_000))
        == "decompression_bomb"
    )


def test_too_small_and_too_large_files():
    assert reject_reason(encode(Image.new("RGB", (20, 20)))) == "too_small"
    assert (
        reject_reason(encode(draw_image(3, (100, 100))), ImageConfig(max_file_bytes=100)) == "file_too_large"
    )


def test_format_not_in_allowlist():
    assert reject_reason(encode(draw_image(4, (64, 64)), "PPM")) == "format_not_allowed"


def test_downscale_keeps_aspect_and_never_upscales():
    big = decoded(encode(draw_image(5, (1200, 600))))
    assert big.size == (256, 128)
    small = decoded(encode(draw_image(5, (100, 60)), "PNG"))
    assert small.size == (100, 60)


def test_large_jpeg_uses_draft_path_and_is_correct():
    # 4000x3000 through draft(): the result must still be the requested size and look like the source.
    source = draw_image(6, (4000, 3000))
    image = decoded(encode(source, quality=90))
    assert image.size == (256, 192)
    reference = np.asarray(source.resize((256, 192), Image.Resampling.LANCZOS), dtype=np.float64)
    assert np.abs(np.asarray(image, dtype=np.float64) - reference).mean() < 12


def test_exif_orientation_applied():
    source = draw_image(7, (300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    image = decoded(encode(source, exif=exif.tobytes()))
    assert image.size == (171, 256)  # 300x200 stored, shown as 200x300, then fitted into 256


def test_cmyk_converted_to_rgb():
    image = decoded(encode(draw_image(8, (120, 90)).convert("CMYK")))
    assert image.mode == "RGB"


def test_sixteen_bit_png_scaled_not_clipped():
    array = (np.linspace(0, 65535, 128 * 64).reshape(64, 128)).astype(np.uint16)
    raw = encode(Image.fromarray(array), "PNG")
    image = decoded(raw, ImageConfig(max_side=256, min_side=32, output_format="png"))
    values = np.asarray(image)[..., 0]
    assert values.min() <= 1 and values.max() >= 254  # the full range survives
    assert len(np.unique(values)) > 200  # not clipped to a couple of levels


def test_palette_with_transparency_and_alpha_composited_on_white():
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # fully transparent red
    assert decoded(encode(rgba, "PNG"), ImageConfig(min_side=32, output_format="png")).getpixel((5, 5)) == (
        255,
        255,
        255,
    )
    palette = Image.new("P", (64, 64), 0)
    palette.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    palette.info["transparency"] = 0
    out = decoded(encode(palette, "PNG", transparency=0), ImageConfig(min_side=32, output_format="png"))
    assert out.getpixel((5, 5)) == (255, 255, 255)
    la = Image.new("LA", (64, 64), (0, 255))
    assert decoded(encode(la, "PNG"), ImageConfig(min_side=32, output_format="png")).getpixel((1, 1)) == (
        0,
        0,
        0,
    )


def test_animated_gif_takes_first_frame():
    frames = [Image.new("RGB", (64, 64), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    pixel = decoded(buffer.getvalue(), ImageConfig(min_side=32, output_format="png")).getpixel((10, 10))
    assert pixel[0] > 200 and pixel[2] < 50


def test_normalisation_is_deterministic_and_content_addressed():
    raw = encode(draw_image(9, (500, 400)))
    first, second = normalize_image(raw, CONFIG), normalize_image(raw, CONFIG)
    assert first.sha256 == second.sha256 and first.data == second.data
    assert len(first.phash) == 16
    other = normalize_image(encode(draw_image(10, (500, 400))), CONFIG)
    assert other.sha256 != first.sha256


def test_exif_metadata_is_stripped():
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    image = decoded(encode(draw_image(11, (200, 200)), exif=exif.tobytes()))
    assert not image.getexif()
