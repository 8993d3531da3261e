"""Collect stage: folders, Hugging Face datasets and URL lists → a validated, deduplicated workspace.

    python -m data_tools.collect photos/ --workspace ws
    mirada collect photos/ hf:org/dataset urls.csv --workspace ws --set source.defaults.language=es-MX
    mirada collect photos/ --workspace ws --metadata notes.csv --config configs/collect.yaml

Inputs are validated before they are fetched (metadata) and after (pixels). Fetching and decoding
run in a bounded thread pool (Pillow and httpx release the GIL), while results are written in input
order by the main thread, one committed transaction per image: a run killed at any point resumes
where it stopped, and a rerun over unchanged inputs reads nothing and adds nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from data_tools.config import StageConfig, load_config
from data_tools.images import ImageConfig, ImageRejected, NormalizedImage, normalize_image
from data_tools.logs import is_quiet, progress_bar
from data_tools.neardup import cluster, hex_to_uint64, near_duplicate_pairs
from data_tools.records import ImageMetadata, MetadataError, validate_metadata
from data_tools.sources import DownloadConfig, SourceConfig, SourceError, SourceItem, iter_source
from data_tools.sources.base import fingerprint_of
from data_tools.sources.urls import make_client
from data_tools.stage_args import add_common_args, add_config_args, run_stage
from data_tools.workspace import Workspace

log = logging.getLogger("data_tools.collect")

# Rejections worth retrying on the next run (the input itself may be fine).
TRANSIENT_REASONS = frozenset({"download_failed", "unreadable"})


class MetadataConfig(StageConfig):
    """Which metadata is required and how it is checked."""

    required: list[str] = Field(
        default_factory=lambda: ["language"],
        description="fields every record must have (any of country, language, region, category, cultural_context, license, author)",
    )
    categories: list[str] = Field(
        default_factory=lambda: [
            "food", "festival", "craft", "clothing", "architecture", "landmark", "everyday object",
            "music", "dance", "religion", "nature", "sport", "art",
        ],
        description="the category vocabulary",
    )  # fmt: skip
    strict_categories: bool = Field(
        False, description="reject records whose category is not in the vocabulary"
    )
    max_field_chars: int = Field(
        500, ge=1, description="longest accepted value of a short field (country, author…)"
    )
    max_context_chars: int = Field(
        4000, ge=1, description="longest accepted cultural_context / reference caption"
    )


class NearDupConfig(StageConfig):
    """Perceptual-hash near-duplicate detection."""

    enabled: bool = Field(
        True, description="find near-duplicates (resized or re-encoded copies) after collecting"
    )
    threshold: int = Field(
        6,
        ge=0,
        le=32,
        description="max Hamming distance between 64-bit pHashes to call two images near-duplicates",
    )


class CollectConfig(StageConfig):
    """Settings of the collect stage."""

    images: ImageConfig = Field(default_factory=ImageConfig, description="image validation and normalisation")
    metadata: MetadataConfig = Field(default_factory=MetadataConfig, description="metadata validation")
    source: SourceConfig = Field(default_factory=SourceConfig, description="column mapping and defaults")
    download: DownloadConfig = Field(default_factory=DownloadConfig, description="URL downloads")
    neardup: NearDupConfig = Field(default_factory=NearDupConfig, description="near-duplicate search")
    workers: int = Field(
        default_factory=lambda: min(4, os.cpu_count() or 1),
        ge=1,
        description="threads reading and decoding local images (default: CPU count, at most 4)",
    )


@dataclass
class CollectSummary:
    """What one collect run did; also written to ``exports/collect_report.json``."""

    new: int = 0
    exact_duplicates: int = 0
    metadata_updated: int = 0
    unchanged: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejections: list[dict[str, str]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    near_duplicates: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    untemplated: Counter[str] = field(default_factory=Counter)
    collected: list[tuple[str, str | None]] = field(default_factory=list)  # (input, language) stored this run
    cleared: int = 0  # rejections of inputs that were fixed or removed since an earlier run

    @property
    def decided(self) -> int:
        """Inputs handled so far, whatever the outcome."""
        return (
            self.new
            + self.exact_duplicates
            + self.metadata_updated
            + self.unchanged
            + sum(self.rejected.values())
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "new": self.new,
            "exact_duplicates": self.exact_duplicates,
            "metadata_updated": self.metadata_updated,
            "unchanged": self.unchanged,
            "rejected": dict(self.rejected),
            "rejections": self.rejections,
            "near_duplicates": self.near_duplicates,
            "near_duplicate_clusters": self.clusters,
            "warnings": self.warnings,
            "untemplated_languages": dict(self.untemplated),
            "stale_rejections_cleared": self.cleared,
            "seconds": round(self.seconds, 3),
        }


def _image_signature(config: CollectConfig) -> str:
    # Only settings that change the stored pixels or the accepted metadata invalidate past inputs.
    return fingerprint_of(
        config.images.model_dump(), config.metadata.model_dump(), config.source.model_dump()
    )


def draft_template_gaps(languages: Iterable[str | None]) -> set[str]:
    """The language tags among ``languages`` that the default draft prompts cannot caption.

    Uses the draft stage's own lookup (exact variety, then bare language), so collect warns about
    exactly the images ``mirada draft`` would fail on, before anyone pays for a draft run.
    """
    from data_tools.draft.config import DraftConfig
    from data_tools.draft.prompts import PromptError, PromptLibrary

    defaults = DraftConfig()
    try:
        library = PromptLibrary(defaults.prompts_dir, defaults.prompt_version)
    except PromptError:  # no shipped templates to check against (a trimmed install)
        return set()
    gaps = set()
    for tag in {t for t in languages if t}:
        try:
            library.for_language(tag)
        except PromptError:
            gaps.add(tag)
    return gaps


def _process(item: SourceItem, image_config: ImageConfig) -> NormalizedImage:
    assert item.fetch is not None
    return normalize_image(item.fetch(), image_config)


class Collector:
    """Runs collect over sources into an open workspace; tests drive it directly."""

    def __init__(self, workspace: Workspace, config: CollectConfig) -> None:
        self.ws = workspace
        self.config = config
        self.signature = _image_signature(config)

    def run(self, sources: Sequence[str], metadata_file: Path | None = None) -> CollectSummary:
        started = time.perf_counter()
        summary = CollectSummary()
        with self.ws.run(
            "collect",
            {"sources": list(sources), "metadata_file": metadata_file, "config": self.config.model_dump()},
        ) as run:
            try:
                with make_client(self.config.download) as client:
                    for spec in sources:
                        items = list(
                            iter_source(
                                spec,
                                self.config.source,
                                self.signature,
                                metadata_file=metadata_file,
                                client=client,
                                download_config=self.config.download,
                                max_file_bytes=self.config.images.max_file_bytes,
                                warn=lambda message: self._warn(summary, message),
                            )
                        )
                        threads = (
                            self.config.download.concurrency
                            if spec.startswith("urls:") or spec.endswith((".csv", ".jsonl", ".ndjson"))
                            else self.config.workers
                        )
                        self._collect_items(items, run.id, summary, threads, label=spec)
                        if items and metadata_file is None:  # a whole source was listed: forget what is gone
                            for source in {item.source for item in items}:
                                summary.cleared += self.ws.clear_stale_rejections(
                                    source, {item.input_key for item in items}
                                )
                self._report_template_gaps(summary)
                if self.config.neardup.enabled:
                    self._find_near_duplicates(summary)
            finally:
                summary.seconds = time.perf_counter() - started
                run.summary = summary.to_dict()
        report = self.ws.exports_dir / "collect_report.json"
        report.write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return summary

    def _pending(self, items: list[SourceItem], run_id: int, summary: CollectSummary) -> Iterator[SourceItem]:
        """Items that need fetching; reports source errors and invalid metadata on the way."""
        for item in items:
            previous = self.ws.get_input(item.input_key)
            if (
                previous is not None
                and previous.fingerprint == item.fingerprint
                and not (previous.outcome == "rejected" and previous.reason in TRANSIENT_REASONS)
            ):
                summary.unchanged += 1
                continue
            if item.error is not None:
                self._reject(item, item.error.reason, item.error.detail, run_id, summary)
                continue
            where = f"{item.origin} ({item.display})" if item.origin else item.display
            try:
                item.metadata = validate_metadata(
                    item.metadata,
                    warn=lambda message, where=where: self._warn(summary, f"{where}: {message}"),
                    required=tuple(self.config.metadata.required),
                    categories=tuple(self.config.metadata.categories),
                    strict_categories=self.config.metadata.strict_categories,
                    max_field_chars=self.config.metadata.max_field_chars,
                    max_context_chars=self.config.metadata.max_context_chars,
                ).to_dict()
            except MetadataError as exc:
                self._reject(item, "invalid_metadata", f"{where}: {exc}", run_id, summary)
                continue
            yield item

    def _collect_items(
        self, items: list[SourceItem], run_id: int, summary: CollectSummary, threads: int, label: str
    ) -> None:
        window: deque[tuple[SourceItem, Future[NormalizedImage]]] = deque()
        with (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="collect") as pool,
            progress_bar(total=len(items), desc=f"collect {Path(label).name or label}", unit="img") as bar,
        ):
            before = summary.decided
            try:
                for item in self._pending(items, run_id, summary):
                    window.append((item, pool.submit(_process, item, self.config.images)))
                    if len(window) >= 2 * threads:
                        self._finish(*window.popleft(), run_id, summary)
                    bar.update(summary.decided - before - bar.n)
                while window:
                    self._finish(*window.popleft(), run_id, summary)
                bar.update(len(items) - bar.n)
            except BaseException:
                for _, future in window:
                    future.cancel()
                raise

    def _finish(
        self, item: SourceItem, future: Future[NormalizedImage], run_id: int, summary: CollectSummary
    ) -> None:
        try:
            image = future.result()
        except (ImageRejected, SourceError) as exc:
            self._reject(item, exc.reason, exc.detail, run_id, summary)
            return
        except OSError as exc:
            self._reject(item, "unreadable", f"{type(exc).__name__}: {exc}", run_id, summary)
            return
        meta = ImageMetadata(**item.metadata)
        summary.collected.append((item.display, meta.language))
        file_name = f"{image.sha256[:2]}/{image.sha256}.{image.extension}"
        target = self.ws.images_dir / file_name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_suffix(f".tmp{os.getpid()}")
            temporary.write_bytes(image.data)
            os.replace(temporary, target)  # the file is whole before the database points at it
        # Decide and write in one transaction: another collect on this workspace may have stored this
        # very input since it was listed, and must then read as done here, not as a duplicate of itself.
        with self.ws.transaction():
            previous = self.ws.get_input(item.input_key)
            if previous is not None and previous.image_id == image.sha256:
                if previous.fingerprint == item.fingerprint and previous.outcome in ("accepted", "duplicate"):
                    summary.unchanged += 1
                    return
                self.ws.update_metadata(image.sha256, meta, item.input_key, item.fingerprint, run_id)
                summary.metadata_updated += 1
                return
            is_new = self.ws.add_image(
                image_id=image.sha256,
                file_name=file_name,
                fmt=image.extension,
                width=image.width,
                height=image.height,
                phash=image.phash,
                meta=meta,
                source=item.source,
                input_key=item.input_key,
                fingerprint=item.fingerprint,
                run_id=run_id,
            )
        if is_new:
            summary.new += 1
        else:
            summary.exact_duplicates += 1

    def _reject(
        self, item: SourceItem, reason: str, detail: str, run_id: int, summary: CollectSummary
    ) -> None:
        self.ws.record_rejection(item.input_key, item.fingerprint, reason, detail, run_id)
        summary.rejected[reason] += 1
        summary.rejections.append({"input": item.display, "reason": reason, "detail": detail})
        if item.display in detail:  # the detail names the input already: say it once
            log.warning("rejected (%s) %s", reason, detail)
        else:
            log.warning("rejected %s (%s): %s", item.display, reason, detail)

    def _report_template_gaps(self, summary: CollectSummary) -> None:
        """Name the images of this run whose variety has no draft template, with the fix."""
        if not summary.collected:
            return
        gaps = draft_template_gaps(language for _, language in summary.collected)
        for tag in sorted(gaps):
            names = [display for display, language in summary.collected if language == tag]
            summary.untemplated[tag] = len(names)
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            self._warn(
                summary,
                f"{len(names)} image(s) in language {tag!r} have no draft template ({shown}): `mirada draft` "
                f"will not caption them. Add configs/prompts/draft/v1/{tag}.yaml (copy es.yaml and translate "
                f"it), or give them a variety that has one in their metadata (e.g. es-PE)",
            )

    def _warn(self, summary: CollectSummary, message: str) -> None:
        """Something accepted that a person should look at: logged now, listed in the report."""
        if message not in summary.warnings:
            summary.warnings.append(message)
            log.warning("%s", message)

    def _find_near_duplicates(self, summary: CollectSummary) -> None:
        rows = self.ws.phashes()
        if not rows:
            return
        ids = [row[0] for row in rows]
        pixels = [row[2] for row in rows]
        pairs = near_duplicate_pairs(hex_to_uint64([row[1] for row in rows]), self.config.neardup.threshold)
        labels = cluster(len(ids), pairs)
        members: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            members.setdefault(int(label), []).append(index)
        assignments: dict[str, tuple[str | None, str | None]] = {}
        for group in members.values():
            # Keep the largest image (the original, not the WhatsApp copy); ties go to the oldest.
            best = min(group, key=lambda i: (-pixels[i], i))
            kept = ids[best]
            for index in group:
                assignments[ids[index]] = (kept, None if index == best else kept)
            if len(group) > 1:
                summary.clusters.append({"kept": kept, "duplicates": [ids[i] for i in group if i != best]})
        summary.near_duplicates = sum(len(c["duplicates"]) for c in summary.clusters)
        self.ws.set_clusters(assignments)


def print_summary(summary: CollectSummary, workspace: Workspace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="collect: this run", show_header=False)
    table.add_row("new images", str(summary.new))
    table.add_row("exact duplicates (provenance added)", str(summary.exact_duplicates))
    table.add_row("metadata updated", str(summary.metadata_updated))
    table.add_row("unchanged (skipped)", str(summary.unchanged))
    table.add_row("rejected", str(sum(summary.rejected.values())))
    table.add_row(
        "near-duplicates in workspace", f"{summary.near_duplicates} in {len(summary.clusters)} clusters"
    )
    table.add_row("time", f"{summary.seconds:.1f} s")
    console.print(table)
    if summary.rejections:
        rejected = Table(title="rejected inputs (this run)")
        for column in ("input", "reason", "detail"):
            rejected.add_column(column, overflow="fold")
        for row in summary.rejections[:50]:
            rejected.add_row(row["input"], row["reason"], row["detail"])
        if len(summary.rejections) > 50:
            rejected.add_row("…", f"{len(summary.rejections) - 50} more", "see exports/collect_report.json")
        console.print(rejected)
    if summary.warnings:
        warned = Table(title="warnings (collected, but worth a look)", show_header=False)
        warned.add_column("warning", overflow="fold")
        for message in summary.warnings[:50]:
            warned.add_row(message)
        if len(summary.warnings) > 50:
            warned.add_row(f"… {len(summary.warnings) - 50} more in exports/collect_report.json")
        console.print(warned)
    if summary.clusters and not is_quiet():
        clusters = Table(title="near-duplicate clusters")
        clusters.add_column("kept")
        clusters.add_column("near-duplicates", overflow="fold")
        for item in summary.clusters[:20]:
            clusters.add_row(
                _shown_name(workspace, item["kept"]),
                ", ".join(_shown_name(workspace, d) for d in item["duplicates"]),
            )
        console.print(clusters)
    # soft_wrap: a command split over two lines cannot be copied and run
    console.print(
        f"workspace: {workspace.root}  ·  `mirada status --workspace {workspace.root}` for totals",
        soft_wrap=True,
    )


def _shown_name(workspace: Workspace, image_id: str) -> str:
    """``foto_03.jpg (52c2ad86ccaf)``: the file name a person recognises, then the short image id."""
    sources = workspace.image_sources(image_id)
    name = Path(str(sources[0]["input_key"])).name if sources else ""
    return f"{name} ({image_id[:12]})" if name else image_id[:12]


def build_parser(prog: str = "python -m data_tools.collect") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Collect images with cultural metadata into a workspace. SOURCE is an image folder (with optional "
            "imagefolder metadata.jsonl/metadata.csv sidecars), a Hugging Face dataset (save_to_disk folder, "
            "parquet, or hub id; prefix hf: to force), or a URL list (.csv/.jsonl with a url column). Bad inputs "
            "are reported with a reason and never stop the run; rerunning adds only what is new."
        ),
        epilog="examples:\n  mirada collect photos/ --workspace ws\n  mirada collect urls.csv --workspace ws "
        "--set source.defaults.license=CC-BY-4.0\n  mirada collect hf:./saved_ds --workspace ws "
        "--set source.columns.country=pais",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="folder, dataset or URL list (see above)"
    )
    add_common_args(parser)
    parser.add_argument(
        "--metadata", type=Path, help="sidecar metadata file for a folder source (imagefolder format)"
    )
    add_config_args(parser, CollectConfig)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m data_tools.collect") -> int:
    parser = build_parser(prog)

    def body(args: argparse.Namespace) -> int:
        config = load_config(CollectConfig, args.config, args.overrides)
        with Workspace.open(args.workspace) as workspace:
            summary = Collector(workspace, config).run(args.sources, args.metadata)
            print_summary(summary, workspace)
        return 0

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
