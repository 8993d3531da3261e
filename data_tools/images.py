"""Image validation and normalisation (DESIGN §2): any input becomes a bounded-size RGB JPEG/PNG.

Speed comes from Pillow's own fast paths: the header is checked before any pixel is decoded
(size, format, pixel limit), JPEGs decode at a reduced DCT scale with ``draft()`` when the target is
much smaller, and ``resize(reducing_gap=…)`` lets Pillow ``reduce()`` by integer factors first.
Correctness comes from a full ``load()`` inside the error boundary: truncated and corrupt files fail
here with a reason, never later in training.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import Field

from data_tools.config import StageConfig


class ImageConfig(StageConfig):
    """How images are validated and normalised."""

    max_side: int = Field(
        1536, ge=64, description="longest side of the stored image, in pixels (downscaled, never upscaled)"
    )
    min_side: int = Field(
        64, ge=1, description="inputs whose shorter side is below this are rejected as too small"
    )
    max_pixels: int = Field(
        89_478_485,
        ge=1,
        description="pixel-count limit checked from the header before decoding (decompression-bomb guard)",
    )
    max_file_bytes: int = Field(
        50_000_000, ge=1, description="inputs larger than this many bytes are rejected"
    )
    formats: list[str] = Field(
        default_factory=lambda: ["JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"],
        description="accepted input formats, as Pillow names them",
    )
    output_format: str = Field("jpeg", pattern="^(jpeg|png)$", description="stored format: jpeg or png")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality of stored images")


class ImageRejected(Exception):
    """An input that cannot become a Mirada image; ``reason`` is a short code for reports."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class NormalizedImage:
    data: bytes
    sha256: str
    extension: str
    width: int
    height: int
    phash: str


_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, MemoryError)
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode: alpha composited on white, 16-bit and float scaled (not clipped) to 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode in _HIGH_DEPTH_MODES:
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        if image.mode == "F":
            top = max(float(array.max(initial=0)), 1.0)
        scaled = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def normalize_image(raw: bytes, config: ImageConfig) -> NormalizedImage:
    """Validate ``raw`` bytes and return the normalised image; raise :class:`ImageRejected` otherwise."""
    if not raw:
        raise ImageRejected("empty_file", "the file has zero bytes")
    if len(raw) > config.max_file_bytes:
        raise ImageRejected(
            "file_too_large", f"{len(raw)} bytes, more than max_file_bytes={config.max_file_bytes}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from None
    except UnidentifiedImageError:
        raise ImageRejected("not_an_image", "Pillow cannot identify this file as an image") from None
    except _DECODE_ERRORS as exc:
        raise ImageRejected("decode_error", f"{type(exc).__name__}: {exc}") from None
    with image:
        if image.format not in config.formats:
            raise ImageRejected(
                "format_not_allowed", f"{image.format} is not in the allowed formats {config.formats}"
            )
        width, height = image.size
        if width * height > config.max_pixels:
            raise ImageRejected(
                "decompression_bomb",
                f"{width}x{height} = {width * height} pixels exceeds max_pixels={config.max_pixels}",
            )
        if min(width, height) < config.min_side:
            raise ImageRejected("too_small", f"{width}x{height} is smaller than min_side={config.min_side}")
        target = _target_size(width, height, config.max_side)
        try:
            if image.format in ("JPEG", "MPO") and target != (width, height):
                # DCT-domain downscale: decodes a 12 MP photo at 1/2..1/8 scale, never below target.
                image.draft("RGB" if image.mode in ("RGB", "YCbCr") else None, target)
            image.seek(0)  # first frame of animations
            image.load()
            oriented = ImageOps.exif_transpose(image) or image
            rgb = _to_rgb(oriented)
        except _DECODE_ERRORS as exc:
            raise ImageRejected("decode_error", f"{type(exc).__name__}: {exc}") from None
    final = _target_size(*rgb.size, config.max_side)
    if final != rgb.size:
        rgb = rgb.resize(final, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    if config.output_format == "jpeg":
        rgb.save(
            buffer, format="JPEG", quality=config.jpeg_quality
        )  # no EXIF kept: strips GPS and camera data
        extension = "jpg"
    else:
        rgb.save(buffer, format="PNG")
        extension = "png"
    data = buffer.getvalue()
    return NormalizedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        extension=extension,
        width=rgb.width,
        height=rgb.height,
        phash=str(imagehash.phash(rgb)),
    )
