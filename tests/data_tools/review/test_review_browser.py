"""Annotators answer in Argilla's real web UI (Debian chromium through playwright); pull returns exactly that.

The real argilla-server (``argilla_server`` fixture), a push, then an annotator logs in and answers by
keyboard and by dragging, ticks labels, leaves the pre-filled correction untouched on one record, edits
it on another and discards a third. The decisions pulled back must be what was clicked, and the
untouched suggestion must not become a "human correction" that beats the annotator's ranking.

Chromium is Debian's (``apt-get install chromium``; ``make test`` installs it when missing), never a
browser downloaded by ``playwright install``. A missing browser fails this test: it is a broken test
environment, not an optional feature.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from data_tools.prefs.build import _sides, sort_sides
from data_tools.prefs.config import PrefsConfig
from data_tools.review.cli import connect
from data_tools.review.config import AggregationPolicy, ReviewConfig
from data_tools.review.service import ReviewService

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[3] / ".cache" / "test-artifacts"
EDITED = "Sombrero vueltiao de caña flecha, tejido a mano por artesanos zenúes de Córdoba."


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    """A page in headless Debian chromium with a fresh profile."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`, "
                    "or run `make test`, which does); never `playwright install`", pytrace=False)  # fmt: skip
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'", pytrace=False)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1600, "height": 1000},
        )  # fmt: skip
        context.set_default_timeout(20_000)
        try:
            yield context.new_page()
        finally:
            context.close()


def _shown_record(page: Any) -> dict[str, str]:
    """The record on screen, as the annotator reads it: slot -> candidate text.

    Argilla renders a custom field in an iframe (``srcdoc``) built from the dataset's template.
    """
    items = page.frame_locator("iframe").first.locator("li[data-slot]")
    items.first.wait_for()
    return {
        item.get_attribute("data-slot"): item.inner_text().split("\n", 1)[-1].strip() for item in items.all()
    }


def _wait_for_next(page: Any, before: dict[str, str], timeout_s: float = 20.0) -> None:
    """Wait until the UI shows another record (after Submit or Discard)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if _shown_record(page) != before:
                return
        except Exception:
            pass
        page.wait_for_timeout(200)
    raise AssertionError(f"the UI still shows the same record {timeout_s:.0f} s after answering it")


def _rank_by_keyboard(page: Any, order: list[str]) -> None:
    ranking = page.locator('[aria-label="Question: ranking"]')
    for rank, slot in enumerate(order, start=1):  # focus a candidate, press its rank's number
        page.wait_for_timeout(300)  # the list re-renders after each move; a key sent earlier is lost
        ranking.locator(f"#{slot}").focus()
        page.keyboard.press(str(rank))
        ranking.locator(".draggable__slot").nth(rank - 1).locator(f"#{slot}").wait_for()


def _rank_by_drag(page: Any, order: list[str]) -> None:
    ranking = page.locator('[aria-label="Question: ranking"]')
    for rank, slot in enumerate(order, start=1):
        target = ranking.locator(".draggable__slot").nth(rank - 1).locator(".draggable__slot-box")
        page.wait_for_timeout(300)
        ranking.locator(f"#{slot}").drag_to(target)
        ranking.locator(".draggable__slot").nth(rank - 1).locator(f"#{slot}").wait_for()


def _tick(page: Any, question: str, label: str) -> None:
    page.locator(f'[aria-label="Question: {question}"]').get_by_text(label, exact=True).click()


def test_answers_given_in_the_web_ui_come_back_exactly(drafted, argilla_server, browser_page, monkeypatch,
                                                       tmp_path, request):  # fmt: skip
    page = browser_page
    with drafted.transaction() as db:  # the fake drafting server words a record's candidates alike
        db.execute("UPDATE drafts SET caption = caption || ' [' || substr(cache_key, 1, 8) || ']'")
    monkeypatch.setenv("ARGILLA_API_URL", argilla_server.url)
    monkeypatch.setenv("ARGILLA_API_KEY", argilla_server.owner_api_key)
    prefix = "ui" + str(abs(hash(request.node.name)) % 10**6)
    config = ReviewConfig(dataset_prefix=prefix, argilla_workspace=argilla_server.workspace, min_submitted=1,
                          aggregation=AggregationPolicy(min_submitted=1))  # fmt: skip
    service = ReviewService(drafted, config)
    client = connect(config)
    service.push(client)
    name = f"{prefix}-es"  # six Spanish records, the variety (es-MX, es-AR…) is a metadata filter
    items = {
        record_id: item for (dataset, record_id), item in drafted.review_items().items() if dataset == name
    }
    captions = {d.cache_key: d.caption for d in drafted.drafts()}

    def on_screen() -> tuple[str, Any]:
        shown = _shown_record(page)
        matches = [rid for rid, item in items.items()
                   if all(captions[item.slots[s]] == text for s, text in shown.items())]  # fmt: skip
        assert len(matches) == 1, f"the record on screen is not one of {name}'s: {shown}"
        return matches[0], items[matches[0]]

    page.goto(f"{argilla_server.url}/sign-in")
    page.locator("input[name=Username]").fill("ana")
    page.locator("input[type=password]").fill("ana-password")
    page.locator("button[type=submit]").click()
    page.get_by_text(name, exact=True).click()

    # 1. ranked by keyboard; the suggested caption is NOT ranked first; its correction box left untouched
    untouched_id, item = on_screen()
    suggested_slot = next(s for s, k in item.slots.items() if k == item.suggestion_key)
    others = [s for s in sorted(item.slots) if s != suggested_slot]
    untouched_order = [others[0], suggested_slot, *others[1:]]
    box = page.locator('[aria-label="Question: correction"] [contenteditable="true"]')
    assert " ".join(box.inner_text().split()) == " ".join(item.suggestion.split())  # pre-filled
    _rank_by_keyboard(page, untouched_order)
    _tick(page, "appropriate", f"Candidato {untouched_order[0].split('_')[1]}")
    stereotyped = others[1]  # a problem flagged on one candidate
    _tick(page, "problem_stereotype", f"Candidato {stereotyped.split('_')[1]}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = tmp_path / "argilla_annotation.png"
    page.screenshot(path=str(shot))
    shutil.copy(shot, ARTIFACTS / shot.name)
    print(f"\nscreenshot of the annotation page: {ARTIFACTS / shot.name}")
    before = _shown_record(page)
    page.get_by_role("button", name="Submit").click()
    _wait_for_next(page, before)

    # 2. ranked by dragging; the correction edited
    edited_id, item = on_screen()
    edited_order = sorted(item.slots, reverse=True)
    _rank_by_drag(page, edited_order)
    box.click()  # edit as a person does: select the pre-filled text and type over it
    page.keyboard.press("Control+A")
    page.keyboard.type(EDITED)
    before = _shown_record(page)
    page.get_by_role("button", name="Submit").click()
    _wait_for_next(page, before)

    # 3. discarded
    discarded_id, _ = on_screen()
    before = _shown_record(page)
    page.get_by_role("button", name="Discard").click()
    _wait_for_next(page, before)

    summary = service.pull(client)
    assert summary.by_status == {"submitted": 2, "discarded": 1}
    decisions = {d["record_id"]: d for d in drafted.review_decisions() if d["dataset"] == name}
    responses = {r.record_id: r for r in drafted.review_responses(name)}

    untouched = decisions[untouched_id]
    slots = items[untouched_id].slots
    assert untouched["ranking"] == [slots[s] for s in untouched_order]
    assert untouched["acceptable"] == {k: s == untouched_order[0] for s, k in slots.items()}
    assert untouched["problems"] == {"stereotype": 1}
    assert untouched["candidate_problems"] == {slots[stereotyped]: {"stereotype": 1}}
    assert responses[untouched_id].correction is None  # the suggestion sent back as it was
    assert untouched["correction"] is None and untouched["suggestion_accepted"] == 1
    chosen = sort_sides(_sides(untouched, {d.cache_key: d for d in drafted.drafts()}, PrefsConfig(), Counter()),
                        "acceptability_then_rank")[0]  # fmt: skip
    assert chosen.text == captions[slots[untouched_order[0]]]  # the annotator's top candidate, not the draft

    edited = decisions[edited_id]
    slots = items[edited_id].slots
    assert edited["ranking"] == [slots[s] for s in edited_order]
    assert edited["correction"] == EDITED and responses[edited_id].correction == EDITED
    chosen = sort_sides(_sides(edited, {d.cache_key: d for d in drafted.drafts()}, PrefsConfig(), Counter()),
                        "acceptability_then_rank")[0]  # fmt: skip
    assert chosen.text == EDITED and chosen.source == "correction"

    assert decisions[discarded_id]["status"] == "discarded"
    assert responses[discarded_id].status == "discarded"
    assert len({untouched_id, edited_id, discarded_id}) == 3
