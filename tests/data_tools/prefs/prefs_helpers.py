"""Build reviewed workspaces with known images, candidates and answers, through the workspace API only.

``Scenario(ws).image(...)`` adds one image (drawn with Pillow, unique bytes), its drafted candidates
and its annotators' answers; ``scenario.aggregate()`` runs the review stage's own aggregation, so
the decisions prefs reads are exactly what a real review pull would store.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from data_tools.records import ImageMetadata
from data_tools.review.config import AggregationPolicy, ReviewConfig
from data_tools.review.service import ReviewService
from data_tools.workspace import DraftRecord, ReviewItem, ReviewResponse, Workspace

MODEL = "command-a-vision-07-2025"


@dataclass
class Answer:
    """One annotator's answer; candidates are named by their short names ("A", "B", …)."""

    user: str
    ranking: list[str]
    acceptable: set[str] = field(default_factory=set)
    correction: str | None = None
    problems: list[str] = field(default_factory=list)
    status: str = "submitted"


@dataclass
class Planted:
    image_id: str
    keys: dict[str, str]  # short name -> draft cache key


class Scenario:
    """A workspace being filled with reviewed images."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.run = ws.start_run("collect", {"test": True})
        self.count = 0
        self.images: list[Planted] = []
        self.clusters: dict[str, tuple[str | None, str | None]] = {}

    def image(self, candidates: dict[str, tuple[str, str]], answers: list[Answer], *, country: str = "MX",
              language: str = "es-MX", category: str = "food", license: str | None = "CC0-1.0",
              author: str | None = "Ana Pérez", perturbations: dict[str, str] | None = None,
              failed: set[str] = frozenset(), datasets: tuple[str, ...] = ("test-ds",),
              cluster_of: str | None = None) -> Planted:  # fmt: skip
        """Add an image with ``candidates`` (name -> (strategy, caption)) and ``answers`` to it."""
        self.count += 1
        n = self.count
        picture = Image.new("RGB", (64 + n % 7, 48), ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256))
        ImageDraw.Draw(picture).ellipse((n % 20, 4, 30 + n % 20, 40), fill=((n * 11) % 256, 200, 40))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        data = buffer.getvalue()
        image_id = hashlib.sha256(data).hexdigest()
        file_name = f"{image_id}.png"
        (self.ws.images_dir / file_name).write_bytes(data)
        meta = ImageMetadata(country=country, language=language, category=category, license=license, author=author,
                             flags=[] if license else ["unknown_license"])  # fmt: skip
        self.ws.add_image(image_id=image_id, file_name=file_name, fmt="PNG", width=picture.width,
                          height=picture.height, phash="0" * 16, meta=meta, source="test",
                          input_key=f"test:{n}", fingerprint=image_id, run_id=self.run)  # fmt: skip
        keys = {}
        for variant, (name, (strategy, caption)) in enumerate(candidates.items()):
            key = f"{image_id[:10]}-{name}"
            keys[name] = key
            status = "failed" if name in failed else "done"
            self.ws.save_draft(
                DraftRecord(cache_key=key, image_id=image_id, strategy=strategy, variant=variant, backend="cohere",
                            model=MODEL, prompt_version="v1", prompt_language=language, prompt_sha256="0" * 64,
                            params={}, status=status, caption=caption if status == "done" else None,
                            perturbation=(perturbations or {}).get(name)),
                self.run,
            )  # fmt: skip
        slots = {f"candidate_{i}": keys[name] for i, name in enumerate(candidates, start=1)}
        for dataset in datasets:
            self.ws.save_review_items([ReviewItem(dataset, image_id, image_id, slots)])
            self.ws.save_review_responses([
                ReviewResponse(dataset=dataset, record_id=image_id, image_id=image_id, user_id=a.user,
                               username=a.user, status=a.status,
                               ranking={keys[name]: rank for rank, name in enumerate(a.ranking, start=1)},
                               acceptable={keys[name]: name in a.acceptable for name in candidates}
                               if a.status == "submitted" else {},
                               problems=list(a.problems), correction=a.correction, raw={"user": a.user})
                for a in answers
            ])  # fmt: skip
        planted = Planted(image_id, keys)
        self.images.append(planted)
        self.clusters[image_id] = (cluster_of or image_id, cluster_of)
        return planted

    def aggregate(self, **policy: object) -> None:
        """Set near-duplicate clusters and compute decisions with the review stage's own aggregation."""
        self.ws.set_clusters(self.clusters)
        config = ReviewConfig(aggregation=AggregationPolicy(**policy))
        ReviewService(self.ws, config).aggregate()


def tacos(scenario: Scenario, **kwargs: object) -> Planted:
    """The worked example of the tests: a correction, two acceptable cultural candidates, two bad ones."""
    return scenario.image(
        {
            "A": ("cultural", "Tacos al pastor en una taquería de la Ciudad de México."),
            "B": ("cultural", "Tacos con piña y cilantro en un puesto callejero."),
            "C": ("generic", "Comida en un plato."),
            "D": ("perturbed", "Tapas españolas en un bar de Madrid."),
        },
        [
            Answer("ana", ["A", "B", "C", "D"], {"A", "B"},
                   correction="Tacos al pastor con piña, cebolla y cilantro en una taquería de la CDMX."),
            Answer("bruno", ["A", "B", "C", "D"], {"A", "B"}, problems=["wrong_culture"]),
        ],
        perturbations={"D": "wrong_country"},
        **kwargs,
    )  # fmt: skip


def four(prefix: str, strategies: tuple[str, ...] = ("cultural", "cultural", "generic", "perturbed")) -> dict[str, tuple[str, str]]:  # fmt: skip
    """Four candidates with distinct captions: ``{"A": ("cultural", "<prefix> a: …"), …}``."""
    return {
        name: (strategy, f"{prefix} {name.lower()}: una escena con detalle número {i} de la cultura local.")
        for i, (name, strategy) in enumerate(zip("ABCD", strategies, strict=True))
    }
