"""End-to-end collect: the three source kinds, reports, idempotency, resume after interruption."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from data_tools.collect import CollectConfig, Collector
from data_tools.config import load_config
from data_tools.workspace import Workspace
from tests.helpers import draw_image, encode

ROOT = Path(__file__).resolve().parents[2]


def collect(ws: Workspace, *sources: str, overrides: tuple[str, ...] = (), metadata: Path | None = None):
    config = load_config(CollectConfig, None, ["workers=2", *overrides])
    return Collector(ws, config).run([str(s) for s in sources], metadata)


def write_folder(root: Path, count: int, *, start: int = 0, meta: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "metadata.jsonl").open("a", encoding="utf-8") as handle:
        for i in range(start, start + count):
            name = f"img_{i:04d}.jpg"
            (root / name).write_bytes(encode(draw_image(i, (400, 300))))
            row = {
                "file_name": name,
                "country": "PE",
                "language": "es-PE",
                "category": "food",
                "license": "CC-BY-4.0",
            }
            handle.write(json.dumps({**row, **(meta or {})}) + "\n")
    return root


# -- folder source --------------------------------------------------------------------------------


def test_sample_folder_end_to_end(workspace, sample_dir):
    summary = collect(workspace, sample_dir)
    assert summary.new == 12  # 11 drawings + the planted near-duplicate copy
    assert dict(summary.rejected) == {"not_an_image": 1, "decode_error": 1}
    assert summary.near_duplicates == 1
    (cluster,) = summary.clusters
    kept = workspace.get_image(cluster["kept"])
    twin = workspace.get_image(cluster["duplicates"][0])
    assert "tacos_al_pastor" in workspace.image_sources(kept.id)[0]["input_key"]  # the larger original
    assert twin.status == "near_duplicate" and twin.dup_of == kept.id and twin.cluster_id == kept.id
    images = workspace.images(status="ok")
    assert len(images) == 11
    assert {i.language for i in images} >= {"es-MX", "pt-BR", "pt-PT", "ca", "gl", "eu", "es-AR"}
    assert all(workspace.image_path(i).is_file() and i.publishable for i in images)
    assert all(max(i.width, i.height) <= 1536 for i in images)
    report = json.loads((workspace.exports_dir / "collect_report.json").read_text())
    assert report["rejected"] == {"not_an_image": 1, "decode_error": 1}
    assert {r["input"] for r in report["rejections"]} == {
        "extra/no_es_una_foto.jpg",
        "extra/foto_cortada.jpg",
    }


def test_rerun_adds_nothing_and_reads_nothing(workspace, sample_dir, monkeypatch):
    collect(workspace, sample_dir)
    before = [(i.id, i.status) for i in workspace.images(status=None)]
    import data_tools.collect as module

    def forbidden(*args, **kwargs):
        raise AssertionError("an unchanged input was decoded again")

    monkeypatch.setattr(module, "normalize_image", forbidden)
    summary = collect(workspace, sample_dir)
    assert summary.new == 0 and summary.unchanged == 14 and not summary.rejected
    assert [(i.id, i.status) for i in workspace.images(status=None)] == before


def test_exact_duplicate_from_two_places_keeps_both_provenances(workspace, tmp_path):
    folder = write_folder(tmp_path / "a", 2)
    shutil.copy(folder / "img_0000.jpg", folder / "copy.jpg")
    summary = collect(workspace, folder, overrides=("metadata.required=[]",))
    assert summary.new == 2 and summary.exact_duplicates == 1
    image_id = workspace.get_input(f"folder:{folder.resolve()}/copy.jpg").image_id
    assert len(workspace.image_sources(image_id)) == 2


def test_metadata_fix_updates_record_without_new_image(workspace, tmp_path):
    folder = write_folder(tmp_path / "f", 1)
    collect(workspace, folder)
    (folder / "metadata.jsonl").write_text(
        json.dumps({"file_name": "img_0000.jpg", "country": "BO", "language": "es-BO", "license": "CC0-1.0"})
        + "\n"
    )
    summary = collect(workspace, folder)
    assert summary.metadata_updated == 1 and summary.new == 0
    (image,) = workspace.images()
    assert (image.country, image.language, image.license) == ("BO", "es-BO", "CC0-1.0")


def test_invalid_metadata_error_names_file_field_and_value(workspace, tmp_path):
    folder = write_folder(tmp_path / "f", 3)
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"PE"', '"XX"')
    lines.append("{not json")
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    summary = collect(workspace, folder)
    assert summary.new == 2
    details = {r["reason"]: r["detail"] for r in summary.rejections}
    assert "metadata.jsonl line 2" in details["invalid_metadata"] or "line 2" in str(summary.rejections)
    bad = next(r for r in summary.rejections if "XX" in r["detail"])
    assert "img_0001.jpg" in bad["detail"] and "'country'" in bad["detail"] and "'XX'" in bad["detail"]
    assert any("line 4" in r["detail"] or "line 4" in r["input"] for r in summary.rejections)


def test_paths_escaping_the_source_are_refused(workspace, tmp_path):
    folder = write_folder(tmp_path / "f", 1)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(encode(draw_image(99)))
    with (folder / "metadata.jsonl").open("a") as handle:
        handle.write(json.dumps({"file_name": "../secret.jpg", "language": "es"}) + "\n")
        handle.write(json.dumps({"file_name": str(secret), "language": "es"}) + "\n")
    (folder / "link.jpg").symlink_to(secret)
    summary = collect(workspace, folder)
    assert summary.rejected["path_escapes_source"] == 3
    assert summary.new == 1


def test_missing_file_and_required_language_default(workspace, tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(encode(draw_image(5)))
    (folder / "metadata.csv").write_text("file_name,country\nmissing.jpg,MX\n")
    summary = collect(workspace, folder)
    assert summary.rejected == {"missing_file": 1, "invalid_metadata": 1}  # a.jpg lacks the required language
    summary = collect(workspace, folder, overrides=("source.defaults.language=es-MX",))
    assert summary.new == 1 and workspace.images()[0].language == "es-MX"


def test_bad_inputs_never_lose_good_records(workspace, tmp_path):
    folder = write_folder(tmp_path / "f", 4)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("hello")
    (folder / "cmyk.jpg").write_bytes(encode(draw_image(50).convert("CMYK")))
    (folder / "tiny.png").write_bytes(encode(draw_image(51).resize((10, 10)), "PNG"))
    summary = collect(workspace, folder, overrides=("source.defaults.language=es",))
    assert summary.new == 5  # four good + the CMYK one, converted
    assert dict(summary.rejected) == {"empty_file": 1, "not_an_image": 1, "too_small": 1}


def test_interrupted_run_resumes_where_it_stopped(workspace, tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "f", 12)
    import data_tools.collect as module

    real = module.normalize_image
    calls = {"n": 0}

    def flaky(raw, config):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(raw, config)

    monkeypatch.setattr(module, "normalize_image", flaky)
    with pytest.raises(KeyboardInterrupt):
        collect(workspace, folder)
    done = len(workspace.images())
    assert 0 < done < 12
    assert workspace.runs()[-1]["status"] == "interrupted"
    monkeypatch.setattr(module, "normalize_image", real)
    summary = collect(workspace, folder)
    assert summary.new == 12 - done and summary.unchanged == done
    assert len(workspace.images()) == 12


def test_killed_process_resumes_without_loss_or_duplication(tmp_path):
    folder = write_folder(tmp_path / "f", 80)
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "data_tools.collect", str(folder), "-w", str(ws), "-q", "--set", "workers=1"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    count = 0
    while time.time() < deadline and process.poll() is None:
        try:
            db = sqlite3.connect(ws / "mirada.db", timeout=5)
            count = db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
            db.close()
        except sqlite3.OperationalError:
            count = 0
        if count >= 10:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert count >= 10
    subprocess.run(cmd, check=True)
    with Workspace.open(ws, create=False) as workspace:
        images = workspace.images()
        assert len(images) == 80
        assert len({i.id for i in images}) == 80
        assert all(workspace.image_path(i).stat().st_size > 0 for i in images)


# -- Hugging Face dataset source ------------------------------------------------------------------


def _hf_dataset(tmp_path: Path):
    import datasets

    rows = {
        "foto": [str(write_path(tmp_path, i)) for i in range(4)],
        "pais": ["MX", "CO", "BR", "nope"],
        "lengua": ["es-MX", "es-CO", "pt-BR", "es"],
        "licencia": ["CC-BY-4.0"] * 4,
    }
    features = datasets.Features(
        {"foto": datasets.Image(), "pais": datasets.Value("string"), "lengua": datasets.Value("string"),
         "licencia": datasets.Value("string")}
    )  # fmt: skip
    return datasets.Dataset.from_dict(rows, features=features)


def write_path(tmp_path: Path, i: int) -> Path:
    path = tmp_path / "raw" / f"{i}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_image(100 + i).save(path)
    return path


MAPPING = ("source.columns.image=foto", "source.columns.country=pais", "source.columns.language=lengua",
           "source.columns.license=licencia")  # fmt: skip


def test_hf_save_to_disk_with_column_mapping(workspace, tmp_path):
    dataset = _hf_dataset(tmp_path)
    dataset.save_to_disk(str(tmp_path / "saved"))
    summary = collect(workspace, tmp_path / "saved", overrides=MAPPING)
    assert summary.new == 3
    assert summary.rejected == {"invalid_metadata": 1}
    assert "'nope'" in summary.rejections[0]["detail"] and "row 3" in summary.rejections[0]["detail"]
    assert sorted(i.country for i in workspace.images()) == ["BR", "CO", "MX"]
    assert {i.source_id for i in workspace.images()} == {"0", "1", "2"}
    assert collect(workspace, tmp_path / "saved", overrides=MAPPING).unchanged == 4


def test_hf_parquet_and_missing_image_column(workspace, tmp_path):
    from data_tools.sources import SourceError

    dataset = _hf_dataset(tmp_path)
    dataset.to_parquet(str(tmp_path / "data.parquet"))
    summary = collect(workspace, tmp_path / "data.parquet", overrides=MAPPING)
    assert summary.new == 3
    with pytest.raises(SourceError, match="no image column 'image'"):
        collect(workspace, tmp_path / "data.parquet")


def test_imagefolder_layout_loads_with_datasets(sample_dir):
    import datasets

    loaded = datasets.load_dataset("imagefolder", data_dir=str(sample_dir), split="train")
    assert "country" in loaded.column_names and "cultural_context" in loaded.column_names


# -- URL list source ------------------------------------------------------------------------------


class ImageServer:
    """A local HTTP server with good images and every misbehaviour the downloader must survive."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with owner.lock:
                    owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                owner.respond(self)  # counts the request out itself, before the client can see its end

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        body, ctype, status, headers = b"", "image/jpeg", 200, {}
        if path.startswith("/img/"):
            time.sleep(0.05)
            body = encode(draw_image(int(path.split("/")[2].split(".")[0]), (300, 200)))
        elif path == "/html.jpg":
            body, ctype = b"<html>hello</html>", "text/html"
        elif path == "/lying.jpg":
            body = b"<html>I claim to be a JPEG</html>"
        elif path == "/huge.jpg":
            body = encode(draw_image(7, (300, 200))) + b"\0" * 300_000
        elif path == "/flaky.jpg":
            if self.hits[path] == 1:
                status, headers = 503, {"Retry-After": "0"}
            else:
                body = encode(draw_image(8, (300, 200)))
        elif path == "/slow.jpg":
            # The client gives up after timeout_s=0.5 and frees its slot; from then on this request is
            # no longer in flight for it, so it stops counting here too (else the limit check flakes).
            time.sleep(0.45)
            with self.lock:
                self.in_flight -= 1
            time.sleep(1.05)
            with self.lock:
                self.in_flight += 1  # balanced below, before the response goes out
            body = encode(draw_image(9, (300, 200)))
        else:
            status, body, ctype = 404, b"not found", "text/plain"
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            handler.send_header(key, value)
        with self.lock:  # out of flight before the client can read a byte: it may then start the next
            self.in_flight -= 1
        handler.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def image_server():
    server = ImageServer()
    yield server
    server.close()


def test_url_list_downloads_politely_and_reports_every_failure(workspace, tmp_path, image_server):
    url = image_server.url
    good = [f"{url}/img/{i}.jpg" for i in range(8)]
    bad = [f"{url}/html.jpg", f"{url}/lying.jpg", f"{url}/huge.jpg", f"{url}/flaky.jpg", f"{url}/slow.jpg",
           f"{url}/missing.jpg", "ftp://example.org/x.jpg"]  # fmt: skip
    listing = tmp_path / "urls.csv"
    listing.write_text(
        "url,country,language,license\n" + "".join(f"{u},MX,es-MX,CC-BY-4.0\n" for u in good + bad)
    )
    overrides = ("download.concurrency=3", "download.max_bytes=200000", "download.timeout_s=0.5",
                 "download.retries=1", "download.backoff_s=0")  # fmt: skip
    summary = collect(workspace, listing, overrides=overrides)
    assert summary.new == 9  # 8 good + flaky after one retry
    reasons = {r["input"].rsplit("/", 1)[-1]: r["reason"] for r in summary.rejections}
    assert reasons == {
        "html.jpg": "not_an_image",
        "lying.jpg": "not_an_image",
        "huge.jpg": "file_too_large",
        "slow.jpg": "download_failed",
        "missing.jpg": "http_error",
        "urls.csv row 16": "invalid_url",
    }
    assert image_server.hits["/flaky.jpg"] == 2
    assert image_server.hits["/missing.jpg"] == 1  # a 404 is final, not retried
    assert image_server.max_in_flight <= 3
    assert all(i.source_url and i.source_url.startswith(url) for i in workspace.images())
    # a rerun downloads nothing that succeeded, but retries the transient failure
    hits_before = dict(image_server.hits)
    summary = collect(workspace, listing, overrides=overrides)
    assert all(image_server.hits[f"/img/{i}.jpg"] == hits_before[f"/img/{i}.jpg"] for i in range(8))
    assert image_server.hits["/slow.jpg"] > hits_before["/slow.jpg"]
    assert image_server.hits["/missing.jpg"] == 1
    assert summary.new == 0


# -- CLI ------------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "data_tools.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_cli_collect_status_export_round_trip(tmp_path, sample_dir):
    ws = tmp_path / "ws"
    result = run_cli(
        "collect", str(sample_dir), "--workspace", str(ws), "--config", "configs/collect.yaml", "-q"
    )
    assert result.returncode == 0, result.stderr
    assert "new images" in result.stdout
    status = run_cli("status", "--workspace", str(ws), "--json")
    summary = json.loads(status.stdout)
    assert summary["images"] == 11 and summary["near_duplicates"] == 1
    assert summary["rejected_by_reason"] == {"not_an_image": 1, "decode_error": 1}
    assert summary["by_country"]["ES"] == 3
    assert summary["runs"][0]["stage"] == "collect"
    exported = run_cli("export", "--workspace", str(ws))
    assert exported.returncode == 0, exported.stderr
    import datasets

    dataset = datasets.load_from_disk(str(ws / "exports" / "images"))
    assert len(dataset) == 11
    assert isinstance(dataset.features["image"], datasets.Image)
    assert dataset[0]["image"].mode == "RGB" and dataset[0]["language"]
    run = json.loads(sqlite3.connect(ws / "mirada.db").execute("SELECT config_json FROM runs").fetchone()[0])
    assert run["config"]["images"]["max_side"] == 1024  # the resolved config, from configs/collect.yaml


def test_cli_help_and_errors_are_one_line(tmp_path):
    top = run_cli("--help")
    assert top.returncode == 0 and "collect" in top.stdout and "status" in top.stdout
    help_collect = run_cli("collect", "--help")
    assert "imagefolder" in help_collect.stdout and "--set" in help_collect.stdout
    assert "max_side" in run_cli("collect", "--help-config").stdout
    missing = run_cli("status", "--workspace", str(tmp_path / "none"))
    assert (
        missing.returncode == 2
        and "not a Mirada workspace" in missing.stderr
        and "Traceback" not in missing.stderr
    )
    typo = run_cli("collect", str(tmp_path), "-w", str(tmp_path / "ws"), "--set", "images.max_sid=3")
    assert typo.returncode == 2 and "did you mean 'images.max_side'" in typo.stderr
    unknown = run_cli("frobnicate")
    assert unknown.returncode == 2 and "unknown command" in unknown.stderr
    nosource = run_cli("collect", str(tmp_path / "nowhere"), "-w", str(tmp_path / "ws"))
    assert nosource.returncode == 2 and "no such folder" in nosource.stderr


def test_entry_script_equals_cli(tmp_path, sample_dir):
    result = subprocess.run(
        [sys.executable, "-m", "data_tools.collect", str(sample_dir), "-w", str(tmp_path / "ws"), "-q"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "new images" in result.stdout


def test_concurrent_collects_report_exact_duplicates_correctly(tmp_path):
    """Two teammates collect the same folder at once: every image is new exactly once, the one real
    duplicate (a copy under another name) is reported once, and no input reads as a copy of itself."""
    folder = write_folder(tmp_path / "f", 30)
    shutil.copy(folder / "img_0003.jpg", folder / "copia_de_img_0003.jpg")
    with (folder / "metadata.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"file_name": "copia_de_img_0003.jpg", "language": "es-PE"}) + "\n")
    ws = tmp_path / "ws"
    Workspace.open(ws).close()  # created (and migrated) once, as the first `mirada collect` would
    cmd = [sys.executable, "-m", "data_tools.collect", str(folder), "-w", str(ws), "-q", "--set", "workers=2"]
    processes = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
    with Workspace.open(ws, create=False) as workspace:
        summaries = [run["summary"] for run in workspace.runs("collect")]
        assert len(summaries) == 2
        assert sum(s["new"] for s in summaries) == 30
        assert sum(s["exact_duplicates"] for s in summaries) == 1
        assert workspace.count_inputs_by("outcome") == {"accepted": 30, "duplicate": 1}
