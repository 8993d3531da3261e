"""An eval workspace: images of four countries with human references, and two systems' captions.

``aligned`` names the dish and place correctly in the requested variety; ``base`` is generic and
sometimes attributes the image to the wrong country or answers in the wrong language, so every
metric has something to find.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from data_tools.records import ImageMetadata
from data_tools.workspace import Workspace
from tests.helpers import draw_image

# country, language, category, region, reference, aligned caption, base caption
DISHES = [
    ("PE", "es-PE", "food", "Lima", "Un ceviche peruano de pescado con cebolla morada y ají limo.",
     "Ceviche peruano de pescado con cebolla morada, ají limo y camote.", "Un plato de comida mexicana con pescado."),
    ("MX", "es-MX", "food", "Oaxaca", "Tlayudas oaxaqueñas con quesillo y tasajo en un mercado.",
     "Una tlayuda de Oaxaca con quesillo y tasajo, típica del mercado.", "Una pizza con queso en un restaurante."),
    ("ES", "es-ES", "festival", "Valencia", "Las Fallas de Valencia: un ninot gigante en la plaza.",
     "Un ninot de las Fallas de Valencia en la plaza.", "Una estatua grande en una fiesta de México."),
    ("BR", "pt-BR", "food", "Minas Gerais", "Pão de queijo mineiro quentinho numa cesta.",
     "Pão de queijo mineiro numa cesta de vime.", "Una cesta con panes de queso."),
]  # fmt: skip


def image_id(index: int) -> str:
    return hashlib.sha256(f"eval-image-{index}".encode()).hexdigest()


def build_workspace(root: Path, copies: int = 3, references: bool = True) -> Workspace:
    """``4 * copies`` images; copies of a dish share a near-duplicate cluster every other image."""
    ws = Workspace.open(root)
    run = ws.start_run("collect", {})
    clusters = {}
    for n in range(4 * copies):
        country, language, category, region, reference, _, _ = DISHES[n % 4]
        iid = image_id(n)
        file_name = f"{iid[:2]}/{iid}.jpg"
        (ws.images_dir / iid[:2]).mkdir(parents=True, exist_ok=True)
        draw_image(n, (96, 72)).save(ws.images_dir / file_name)
        meta = ImageMetadata(
            country=country, language=language, region=region, category=category,
            cultural_context=f"Foto de {region}.", reference_captions=[reference] if references else [],
            license="CC0-1.0",
        )  # fmt: skip
        ws.add_image(
            image_id=iid, file_name=file_name, fmt="jpg", width=96, height=72, phash=f"{n:016x}", meta=meta,
            source="test", input_key=f"fotos/plato_{n}.jpg", fingerprint=str(n), run_id=run,
        )  # fmt: skip
        clusters[iid] = (f"c{n // 2}", None)
    ws.set_clusters(clusters)
    ws.finish_run(run, "completed", {})
    return ws


def predictions(copies: int = 3, systems: tuple[str, ...] = ("base", "aligned")) -> list[dict]:
    rows = []
    for n in range(4 * copies):
        _, _, _, _, _, aligned, base = DISHES[n % 4]
        for system in systems:
            rows.append(
                {
                    "image_id": image_id(n),
                    "system": system,
                    "caption": aligned if system == "aligned" else base,
                }
            )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def train_card(folder) -> None:
    """A card exactly as ``mirada train`` writes it, with a training-objective eval result."""
    from vlm.train.card import CardFacts, write_card

    facts = CardFacts(
        model_name="tacos-dpo", repo_id=None, base_model="Qwen/Qwen2.5-VL-7B-Instruct", base_is_hub=True,
        family="Qwen2.5-VL", grid_sync=False, method="dpo", dataset="tacos_image_dpo", dataset_link=None,
        license="apache-2.0", base_license="apache-2.0", languages=["es", "pt"], rows={"train": 40, "test": 8},
        dropped={}, max_tokens=None, image_tokens=256, countries={"MX": 20, "PE": 20}, language_counts={"es-MX": 40},
        labels={}, hyperparameters={"learning_rate": 5e-6}, config={}, hardware="CPU", train_seconds=12.0,
        sessions=1, global_step=10, epoch=1.0, train_loss=0.69, eval_metrics={"eval_loss": 0.61}, eval_split="test",
        emissions=None, emissions_country="ESP", curves=None,
    )  # fmt: skip
    folder.mkdir()
    write_card(facts, folder)
