"""Helpers shared by tests: generated images (never network images)."""

from __future__ import annotations

import io

from PIL import Image

from data_tools.sample import random_picture


def draw_image(seed: int, size: tuple[int, int] = (320, 240), mode: str = "RGB") -> Image.Image:
    """A distinct, deterministic picture per seed (see ``data_tools.sample.random_picture``)."""
    image = random_picture(seed, size)
    return image.convert(mode) if mode != "RGB" else image


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()
