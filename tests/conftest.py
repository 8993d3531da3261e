"""Shared fixtures: generated images (never network images) and fresh workspaces under tmp_path."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from data_tools.logs import setup_logging
from data_tools.sample import random_picture, write_sample
from data_tools.workspace import Workspace


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    setup_logging(quiet=True)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded sample (with its planted near-duplicate and broken files), written once."""
    return write_sample(tmp_path_factory.mktemp("sample") / "sample")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.open(tmp_path / "ws") as ws:
        yield ws


def draw_image(seed: int, size: tuple[int, int] = (320, 240), mode: str = "RGB") -> Image.Image:
    """A distinct, deterministic picture per seed (see ``data_tools.sample.random_picture``)."""
    image = random_picture(seed, size)
    return image.convert(mode) if mode != "RGB" else image


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def make_image() -> Callable[..., Image.Image]:
    return draw_image
