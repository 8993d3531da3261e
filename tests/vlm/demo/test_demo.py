"""The demo in a real browser (Debian chromium + playwright) and through gradio_client; the Space export.

The captioners are plain functions of the image (its mean colour) so that the test can tell which
column shows which system's caption for which image; the loading path is covered by vlm.models.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from huggingface_hub import SpaceCard
from PIL import Image

from tests.fakes.hub_server import FakeHub, point_libraries_at
from vlm.demo.app import Example, build_demo, load_examples
from vlm.demo.cli import main as demo_main
from vlm.demo.space import export_space

ARTEFACTS = Path(os.environ.get("MIRADA_TEST_ARTEFACTS", Path(__file__).resolve().parents[3] / ".artefacts"))
CHROMIUM = "/usr/bin/chromium"


def _colour(image: Image.Image) -> str:
    r, g, b = (int(v) for v in image.convert("RGB").resize((1, 1)).getpixel((0, 0)))
    return f"rgb({r},{g},{b})"


def base(image, metadata):
    return f"base sees {_colour(image)}"


def tuned(image, metadata):
    time.sleep(0.05)
    return f"tuned sees {_colour(image)} in {metadata.get('country') or '?'}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    Image.new("RGB", (64, 48), (0, 128, 0)).save(folder / "verde.png")
    examples = [Example(str(folder / "verde.png"), "MX", "es-MX", "mercado de Oaxaca", "un mercado")]
    demo = build_demo({"base": base, "tiny-dpo": tuned}, examples=examples)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield url
    demo.close()


def test_gradio_client_gets_both_captions_and_latencies(served, tmp_path):
    from gradio_client import Client, handle_file

    path = tmp_path / "rojo.png"
    Image.new("RGB", (32, 32), (200, 0, 0)).save(path)
    client = Client(served, verbose=False)
    result = client.predict(handle_file(str(path)), "PE", "es-PE", "", False, api_name="/describe")
    base_caption, tuned_caption, base_time, tuned_time, cohere = result
    assert base_caption == "base sees rgb(200,0,0)"
    assert tuned_caption == "tuned sees rgb(200,0,0) in PE"
    assert float(tuned_time.split()[0]) >= 0.05 > float(base_time.split()[0]) - 0.05
    assert cohere == ""


def test_browser_upload_click_reads_both_captions(served, tmp_path):
    from playwright.sync_api import sync_playwright

    path = tmp_path / "azul.png"
    Image.new("RGB", (40, 30), (0, 0, 255)).save(path)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(  # a fresh profile folder per run
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            viewport={"width": 1280, "height": 900},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.goto(served)
            page.locator("#image input[type=file]").set_input_files(str(path))
            page.locator("#country textarea, #country input").first.fill("CO")
            page.locator("#describe").click()
            tuned_box = page.locator("#caption-1 textarea")
            tuned_box.wait_for()
            page.wait_for_function(
                "() => document.querySelector('#caption-1 textarea').value.startsWith('tuned')", timeout=20000
            )
            assert page.locator("#caption-0 textarea").input_value() == "base sees rgb(0,0,255)"
            assert tuned_box.input_value() == "tuned sees rgb(0,0,255) in CO"
            assert page.locator("#latency-1").inner_text().strip().endswith(" s")
            page.screenshot(path=str(ARTEFACTS / "demo.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTEFACTS / "demo.png").stat().st_size > 10_000


def test_export_space_writes_header_pins_and_examples(tmp_path, monkeypatch):
    image = tmp_path / "fiesta.png"
    Image.new("RGB", (16, 16), (255, 200, 0)).save(image)
    examples = [Example(str(image), "BR", "pt-BR", "festa junina", "uma festa")]
    warnings = export_space(tmp_path / "space", base_model="Qwen/Qwen2.5-VL-7B-Instruct", adapters=["org/q-dpo"],
                            datasets=["org/fiestas_image_dpo"], examples=examples,
                            code_url="https://github.com/org/mirada")  # fmt: skip
    assert warnings == []
    card = SpaceCard.load(tmp_path / "space" / "README.md")
    header = card.data.to_dict()
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py"
    assert header["sdk_version"].count(".") == 2 and header["suggested_hardware"] == "zero-a10g"
    assert header["models"] == ["Qwen/Qwen2.5-VL-7B-Instruct", "org/q-dpo"]
    assert header["datasets"] == ["org/fiestas_image_dpo"]
    requirements = (tmp_path / "space" / "requirements.txt").read_text().splitlines()
    assert requirements[0] == "mirada @ git+https://github.com/org/mirada"
    assert all("==" in line for line in requirements[1:]) and any(
        r.startswith("gradio==") for r in requirements
    )
    app = (tmp_path / "space" / "app.py").read_text()
    compile(app, "app.py", "exec")
    assert "spaces.GPU(duration=120)" in app
    assert "pt-BR" in (tmp_path / "space" / "instructions.yaml").read_text()
    assert load_examples(tmp_path / "space" / "examples")[0].country == "BR"
    # local paths cannot run on a Space: a warning, not a silent broken Space
    assert any("not a Hub id" in w for w in export_space(tmp_path / "s2", base_model=str(tmp_path)))


def test_exported_app_builds_the_blocks_without_spaces(tmp_path, monkeypatch):
    """app.py runs where ``spaces`` is absent (the decorator is a no-op) and serves the injected captioners."""
    import runpy

    export_space(tmp_path / "space", base_model="org/base", adapters=["org/a"], code_url="https://x.org/m")
    monkeypatch.setattr("vlm.demo.captioners.model_captioners",
                        lambda model, adapters, instructions, **kw: {"base": base, **{a: tuned for a in adapters}}
                        if instructions.is_file() else {})  # fmt: skip
    monkeypatch.setitem(__import__("sys").modules, "spaces", None)  # import spaces -> ImportError
    namespace = runpy.run_path(str(tmp_path / "space" / "app.py"))
    assert list(namespace["captioners"]) == ["base", "org/a"]
    assert namespace["demo"].title == "Mirada demo"


def test_cli_push_space_to_hub_stand_in(tmp_path, monkeypatch, capsys):
    with FakeHub(token="hf_space_token") as hub:
        point_libraries_at(hub, monkeypatch)
        monkeypatch.setenv("HF_TOKEN", "hf_space_token")
        code = demo_main(["--model", "org/base", "--adapter", "org/a", "--export-space", str(tmp_path / "sp"),
                          "--push-to-hub", "org/a-demo", "--code-url", "https://github.com/org/m"])  # fmt: skip
        assert code == 0
        files = hub.files("org/a-demo", "space")
        assert {"app.py", "requirements.txt", "README.md", "demo_settings.json"} <= set(files)
        assert hub.repo_settings[("space", "org/a-demo")]["sdk"] == "gradio"
    assert "hf_space_token" not in capsys.readouterr().out
    monkeypatch.delenv("HF_TOKEN")
    assert (
        demo_main(["--model", "org/base", "--export-space", str(tmp_path / "x"), "--push-to-hub", "o/n"]) == 2
    )
    assert "HF_TOKEN" in capsys.readouterr().err and not (tmp_path / "x").exists()
    shutil.rmtree(tmp_path / "sp")


def test_model_captioners_share_one_model_base_is_the_adapter_disabled(tiny_model, tmp_path):
    """Through the shared loader: the base column equals the base model alone; the adapter column differs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from vlm.demo.captioners import model_captioners

    base_dir = tiny_model("qwen2_5_vl")
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(base_dir, dtype=torch.float32)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=64, init_lora_weights=False,
                                            target_modules=r".*language_model.*\.(q|k|v|o)_proj"))  # fmt: skip
    lora.save_pretrained(tmp_path / "run-dpo")
    image = Image.new("RGB", (64, 64), (120, 30, 200))
    metadata = {"country": "AR", "language": "es-AR", "notes": None}
    both = model_captioners(str(base_dir), [str(tmp_path / "run-dpo")], max_new_tokens=8)
    assert list(both) == ["base", "run-dpo"]
    alone = model_captioners(str(base_dir), max_new_tokens=8)
    assert both["base"](image, metadata) == alone["base"](image, metadata)
    assert both["run-dpo"](image, metadata) != both["base"](image, metadata)


def test_cohere_draft_is_asked_only_when_ticked_and_uses_the_notes(tmp_path):
    """The real cohere SDK against the local Cohere stand-in: one paid call per tick, none otherwise."""
    from gradio_client import Client, handle_file

    from tests.fakes.cohere_server import FakeCohereServer, prompt_text
    from vlm.demo.captioners import cohere_drafter

    def responder(body):
        return "Borrador: " + ("con notas" if "Fiesta de la Candelaria" in prompt_text(body) else "sin notas")

    path = tmp_path / "foto.png"
    Image.new("RGB", (48, 48), (10, 200, 90)).save(path)
    with FakeCohereServer(api_key="co-test-key", responder=responder) as server:
        drafter = cohere_drafter("co-test-key", base_url=server.url)
        demo = build_demo({"base": base}, drafter=drafter)
        _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        try:
            client = Client(url, verbose=False)
            unticked = client.predict(handle_file(str(path)), "PE", "es-PE", "Fiesta de la Candelaria", False,
                                      api_name="/describe")  # fmt: skip
            assert unticked[-1] == "" and server.count() == 0
            ticked = client.predict(handle_file(str(path)), "PE", "es-PE", "Fiesta de la Candelaria", True,
                                    api_name="/describe")  # fmt: skip
            again = client.predict(handle_file(str(path)), "PE", "es-PE", "", True, api_name="/describe")
        finally:
            demo.close()
        assert ticked[-1] == "Borrador: con notas" and ticked[0] == "base sees rgb(10,200,90)"
        assert again[-1] == "Borrador: sin notas" and server.count() == 2
        request = server.requests[0]
        assert (
            "Perú" in prompt_text(request.body) and request.headers["authorization"] == "Bearer co-test-key"
        )
