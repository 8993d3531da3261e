"""The embedded sample: a small image folder drawn with Pillow, with realistic cultural metadata.

``make demo`` and the tests need images without the network; drawing them keeps the repository
small and the licence clean (CC0, generated). The pictures are simple, but the metadata is what a
real collector would write: ISO country, BCP 47 variety, category, notes, reference captions. The
folder is in Hugging Face ``imagefolder`` layout, and by default also holds one planted
near-duplicate and two broken files, so a demo run shows every kind of report.

    mirada sample demo/sample
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from data_tools.logs import setup_logging

Draw = Callable[[ImageDraw.ImageDraw, int, int, random.Random], None]


def _tacos(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    d.rectangle([0, 0, w, h], fill=(196, 120, 60))
    d.ellipse([w * 0.1, h * 0.15, w * 0.9, h * 0.85], fill=(240, 240, 235), outline=(30, 90, 160), width=8)
    for i in range(3):
        x = w * (0.22 + 0.2 * i)
        d.chord([x, h * 0.35, x + w * 0.2, h * 0.7], 180, 360, fill=(235, 205, 140))
        for _ in range(12):
            px, py = x + rng.uniform(10, w * 0.18), h * rng.uniform(0.45, 0.55)
            d.ellipse(
                [px, py, px + 8, py + 8], fill=rng.choice([(200, 60, 40), (250, 200, 60), (60, 150, 60)])
            )


def _papel_picado(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    d.rectangle([0, 0, w, h], fill=(30, 30, 70))
    colors = [(230, 40, 120), (250, 160, 20), (40, 170, 220), (120, 200, 60), (160, 60, 200)]
    for row in range(2):
        y = h * (0.1 + 0.4 * row)
        d.line([0, y, w, y], fill=(240, 240, 240), width=3)
        for i in range(6):
            x = i * w / 6 + 4
            d.rectangle([x, y, x + w / 6 - 8, y + h * 0.3], fill=colors[(i + row) % len(colors)])
            for _ in range(5):
                cx, cy = x + rng.uniform(8, w / 6 - 24), y + rng.uniform(8, h * 0.25)
                d.ellipse([cx, cy, cx + 10, cy + 10], fill=(30, 30, 70))


def _azulejos(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    tile = w // 6
    for ty in range(0, h, tile):
        for tx in range(0, w, tile):
            d.rectangle([tx, ty, tx + tile, ty + tile], fill=(245, 245, 240), outline=(20, 60, 150), width=2)
            c = tile / 2
            d.ellipse(
                [tx + c * 0.4, ty + c * 0.4, tx + c * 1.6, ty + c * 1.6], outline=(20, 60, 150), width=4
            )
            d.polygon([(tx + c, ty + 4), (tx + tile - 4, ty + c), (tx + c, ty + tile - 4), (tx + 4, ty + c)],
                      outline=(40, 90, 190))  # fmt: skip


def _mola(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    layers = [(200, 20, 30), (20, 20, 20), (250, 140, 0), (20, 120, 60), (250, 220, 40)]
    for i, color in enumerate(layers):
        inset = i * min(w, h) * 0.08
        d.rounded_rectangle([inset, inset, w - inset, h - inset], radius=30, fill=color)
    for k in range(8):
        angle = k * math.pi / 4
        x, y = w / 2 + math.cos(angle) * w * 0.18, h / 2 + math.sin(angle) * h * 0.18
        d.ellipse([x - 14, y - 14, x + 14, y + 14], fill=(40, 60, 200))


def _vueltiao(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    d.rectangle([0, 0, w, h], fill=(210, 190, 150))
    for i in range(12):
        r = min(w, h) * (0.45 - i * 0.033)
        d.ellipse([w / 2 - r, h / 2 - r * 0.6, w / 2 + r, h / 2 + r * 0.6],
                  fill=(25, 25, 25) if i % 2 else (245, 240, 225))  # fmt: skip


def _chullo(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    stripes = [(200, 30, 60), (250, 180, 0), (30, 100, 180), (240, 240, 240), (30, 140, 70)]
    band = h / 10
    for i in range(10):
        d.rectangle([0, i * band, w, (i + 1) * band], fill=stripes[i % len(stripes)])
        for x in range(0, w, int(band)):
            d.polygon([(x, i * band + band / 2), (x + band / 2, i * band), (x + band, i * band + band / 2),
                       (x + band / 2, (i + 1) * band)], outline=(20, 20, 20))  # fmt: skip


def _castells(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    d.rectangle([0, 0, w, h], fill=(180, 200, 230))
    d.rectangle([0, h * 0.8, w, h], fill=(150, 140, 120))
    for level in range(6):
        people = max(1, 5 - level)
        y = h * 0.8 - (level + 1) * h * 0.12
        for p in range(people):
            x = w / 2 + (p - (people - 1) / 2) * w * 0.09
            d.ellipse([x - 10, y - 10, x + 10, y + 10], fill=(230, 190, 160))
            d.rectangle([x - 14, y + 10, x + 14, y + h * 0.1], fill=(200, 30, 40))


def _mate(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    d.rectangle([0, 0, w, h], fill=(120, 80, 50))
    d.ellipse([w * 0.3, h * 0.35, w * 0.7, h * 0.9], fill=(90, 60, 30), outline=(200, 170, 60), width=6)
    d.ellipse([w * 0.35, h * 0.35, w * 0.65, h * 0.45], fill=(80, 140, 50))
    d.line([w * 0.55, h * 0.4, w * 0.7, h * 0.1], fill=(210, 210, 215), width=7)


def _feijoada(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    d.rectangle([0, 0, w, h], fill=(235, 225, 200))
    d.ellipse([w * 0.15, h * 0.2, w * 0.85, h * 0.9], fill=(60, 40, 35))
    for _ in range(120):
        x, y = rng.uniform(w * 0.25, w * 0.75), rng.uniform(h * 0.3, h * 0.8)
        d.ellipse([x, y, x + 9, y + 6], fill=(25, 15, 15))
    d.rectangle([w * 0.02, h * 0.05, w * 0.25, h * 0.3], fill=(250, 250, 250))
    d.rectangle([w * 0.75, h * 0.05, w * 0.98, h * 0.3], fill=(250, 140, 40))


def _horreo(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    d.rectangle([0, 0, w, h], fill=(120, 170, 110))
    for x in (0.25, 0.45, 0.65):
        d.rectangle([w * x, h * 0.6, w * x + 14, h * 0.85], fill=(150, 150, 150))
    d.rectangle([w * 0.18, h * 0.35, w * 0.82, h * 0.6], fill=(170, 160, 150), outline=(90, 80, 70), width=3)
    d.polygon([(w * 0.14, h * 0.36), (w * 0.5, h * 0.15), (w * 0.86, h * 0.36)], fill=(160, 70, 50))
    d.line([w * 0.5, h * 0.15, w * 0.5, h * 0.06], fill=(200, 200, 200), width=6)


def _txapela(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    d.rectangle([0, 0, w, h], fill=(210, 40, 40))
    d.rectangle([0, h * 0.45, w, h * 0.55], fill=(250, 250, 250))
    d.ellipse([w * 0.2, h * 0.25, w * 0.8, h * 0.65], fill=(20, 20, 30))
    d.line([w * 0.5, h * 0.27, w * 0.52, h * 0.18], fill=(20, 20, 30), width=5)


SAMPLE: list[tuple[str, Draw, dict[str, object]]] = [
    ("mx/tacos_al_pastor.jpg", _tacos, {
        "country": "MX", "language": "es-MX", "region": "Ciudad de México", "category": "food",
        "cultural_context": "Tacos al pastor servidos en una taquería: carne adobada con achiote, piña, cebolla y cilantro sobre tortilla de maíz.",
        "reference_captions": ["Un plato de tacos al pastor con piña, cebolla y cilantro, como los de cualquier taquería chilanga."]}),
    ("mx/papel_picado.png", _papel_picado, {
        "country": "MX", "language": "es-MX", "region": "Oaxaca", "category": "festival",
        "cultural_context": "Papel picado de colores colgado para el Día de Muertos; se recorta a mano con cincel.",
        "reference_captions": ["Banderitas de papel picado de colores adornan la calle para el Día de Muertos."]}),
    ("pt/azulejos.png", _azulejos, {
        "country": "PT", "language": "pt-PT", "region": "Lisboa", "category": "architecture",
        "cultural_context": "Painel de azulejos azuis e brancos, típico das fachadas de Lisboa desde o século XVII.",
        "reference_captions": ["Azulejos azuis e brancos com motivos geométricos, como os das fachadas lisboetas."]}),
    ("pa/mola_guna.png", _mola, {
        "country": "PA", "language": "es-PA", "region": "Guna Yala", "category": "craft",
        "cultural_context": "Mola del pueblo guna: capas de tela superpuestas y recortadas (técnica de aplicación inversa).",
        "reference_captions": ["Una mola guna de capas rojas, negras y naranjas cosidas a mano."]}),
    ("co/sombrero_vueltiao.jpg", _vueltiao, {
        "country": "CO", "language": "es-CO", "region": "Córdoba", "category": "clothing",
        "cultural_context": "Sombrero vueltiao tejido con caña flecha por artesanos zenúes; símbolo cultural de Colombia.",
        "reference_captions": ["Un sombrero vueltiao de caña flecha con sus franjas negras y blancas."]}),
    ("pe/chullo.jpg", _chullo, {
        "country": "PE", "language": "es-PE", "region": "Cusco", "category": "clothing",
        "cultural_context": "Tejido andino de un chullo de lana de alpaca con rombos y franjas de colores.",
        "reference_captions": ["Tejido andino de colores vivos con rombos, como el de un chullo cusqueño."]}),
    ("es/castells.png", _castells, {
        "country": "ES", "language": "ca", "region": "Catalunya", "category": "festival",
        "cultural_context": "Un castell: torre humana de la tradició catalana, amb la camisa de colla i la faixa.",
        "reference_captions": ["Una colla castellera aixeca un castell a la plaça durant la festa major."]}),
    ("ar/mate.jpg", _mate, {
        "country": "AR", "language": "es-AR", "region": "Buenos Aires", "category": "everyday object",
        "cultural_context": "Mate de calabaza con yerba y bombilla de alpaca; se comparte en ronda.",
        "reference_captions": ["Un mate de calabaza con yerba y la bombilla, listo para cebar."]}),
    ("br/feijoada.jpg", _feijoada, {
        "country": "BR", "language": "pt-BR", "region": "Rio de Janeiro", "category": "food",
        "cultural_context": "Feijoada com arroz branco e laranja, prato tradicional servido às quartas e sábados.",
        "reference_captions": ["Uma feijoada completa com arroz e laranja, como no almoço de sábado carioca."]}),
    ("es/horreo.jpg", _horreo, {
        "country": "ES", "language": "gl", "region": "Galicia", "category": "architecture",
        "cultural_context": "Hórreo galego de pedra sobre pés, usado para gardar o millo lonxe da humidade.",
        "reference_captions": ["Un hórreo galego de pedra cunha cruz no tellado, entre prados verdes."]}),
    ("es/txapela.png", _txapela, {
        "country": "ES", "language": "eu", "region": "Euskadi", "category": "clothing",
        "cultural_context": "Txapela beltza, euskal janzkera tradizionala, jaietan eta txapelketetan erabiltzen dena.",
        "reference_captions": ["Txapela beltz bat, euskal jantzi tradizionala."]}),
]  # fmt: skip


def random_picture(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct, deterministic picture per seed (shapes on a coloured ground), for tests and benchmarks."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x0, y0 = rng.randrange(size[0]), rng.randrange(size[1])
        x1, y1 = x0 + rng.randrange(20, max(21, size[0] // 2)), y0 + rng.randrange(20, max(21, size[1] // 2))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x1, y1], fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


COMMON = {"license": "CC0-1.0", "author": "Mirada sample generator"}


def write_sample(
    out_dir: str | Path, *, size: tuple[int, int] = (480, 360), include_problems: bool = True
) -> Path:
    """Draw the sample into ``out_dir`` (an imagefolder with ``metadata.jsonl``); return the folder."""
    out = Path(out_dir)
    rows = []
    for index, (relative, draw, meta) in enumerate(SAMPLE):
        rng = random.Random(index)
        image = Image.new("RGB", size, (255, 255, 255))
        draw(ImageDraw.Draw(image), size[0], size[1], rng)
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=92) if path.suffix == ".jpg" else image.save(path)
        rows.append({"file_name": relative, **meta, **COMMON})
    if include_problems:
        # A smaller, recompressed copy of the tacos: a near-duplicate that collect must catch.
        original = Image.open(out / SAMPLE[0][0])
        copy = original.resize((size[0] * 3 // 4, size[1] * 3 // 4), Image.Resampling.BICUBIC)
        (out / "extra").mkdir(exist_ok=True)
        copy.save(out / "extra/tacos_copia_whatsapp.jpg", quality=60)
        rows.append({"file_name": "extra/tacos_copia_whatsapp.jpg", **SAMPLE[0][2], **COMMON})
        # Two broken inputs with good metadata: an HTML error page saved as .jpg, and a truncated JPEG.
        (out / "extra/no_es_una_foto.jpg").write_bytes(b"<html>404 Not Found</html>")
        rows.append({"file_name": "extra/no_es_una_foto.jpg", **SAMPLE[1][2], **COMMON})
        buffer = io.BytesIO()
        original.save(buffer, format="JPEG")
        (out / "extra/foto_cortada.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
        rows.append({"file_name": "extra/foto_cortada.jpg", **SAMPLE[0][2], **COMMON})
    with (out / "metadata.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def main(argv: Sequence[str] | None = None, prog: str = "python -m data_tools.sample") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Write Mirada's embedded sample image folder.")
    parser.add_argument("out_dir", type=Path, help="folder to write (created)")
    parser.add_argument(
        "--clean", action="store_true", help="only the good images: no planted duplicate or broken files"
    )
    parser.add_argument("--quiet", "-q", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(quiet=args.quiet)
    out = write_sample(args.out_dir, include_problems=not args.clean)
    if not args.quiet:
        print(f"sample written to {out} ({len(SAMPLE)} images + metadata.jsonl)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
