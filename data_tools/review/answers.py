"""Read a review answers file (``mirada review import``) as people write it, and report every problem at once.

Teams that annotate outside Argilla hand-edit a JSONL file, one answer per line::

    {"dataset": "tacos-es-MX", "record_id": "3f…", "user": "ana", "status": "enviado",
     "ranking": "2,1,3,4", "appropriate": ["candidato_2"], "problems": ["estereotipo"], "correction": null}

Why a module of its own: the file is hostile input. Every value shape is checked (a ranking as an
object, ``NaN``, ranks without values, a list as ``record_id``, invalid UTF-8…) and *all* problems
are listed with their line numbers in one error, so a reviewer fixes the file once, and nothing is
imported until it is clean (a half-imported file would silently bias the decisions).

What people write is accepted as long as it is unambiguous: labels, statuses and the word for
"candidate" in the reviewers' language come from the UI files in ``configs/review/*.yaml``
(``questions.problems.labels``, the ``answers:`` block, ``fields.candidate``), never from Python, so
a team adds a language or an alias by editing YAML. Rankings may be a list of slots best first
(``["candidate_2", "candidate_1"]``, ``[2, 1]``, ``"2,1,3,4"``, ``"candidato_2 > candidato_1"``),
``[{"value": slot, "rank": n}]`` as Argilla stores it, or ``{slot: rank}``.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_tools.review.items import PROBLEM_LABELS
from data_tools.workspace import ReviewItem

STATUSES = ("submitted", "discarded", "draft")
MAX_ERRORS_SHOWN = 50
_SEPARATORS = re.compile(r"\s*(?:,|;|>|\|)\s*|\s+")


class AnswerFileError(ValueError):
    """The answers file has problems; ``problems`` lists each with its line number."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1 and not problems[0].startswith("line "):  # the file as a whole: one line
            super().__init__(f"{path}: {problems[0]}; nothing was imported")
            return
        shown = problems[:MAX_ERRORS_SHOWN]
        more = f"\n  … and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(
            f"{path.name}: {len(problems)} problem(s); nothing was imported:\n  " + "\n  ".join(shown) + more
        )


def normalise(text: str) -> str:
    """Case, accents, ``_``/``-`` and spacing do not matter: ``normalise("Variedad_Lingüística") == "variedad linguistica"``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[_\-]+", " ", plain).split())


@dataclass(frozen=True)
class Vocabulary:
    """What an answers file may say, in every reviewer language: ``alias -> id``."""

    labels: dict[str, str]
    statuses: dict[str, str]
    candidate_words: tuple[str, ...]  # "candidate", "candidato", … (slot ``candidate_<n>``)
    known_labels: dict[str, list[str]] = field(default_factory=dict)  # id -> what people may write

    @classmethod
    def from_ui_dir(cls, ui_dir: Path) -> Vocabulary:
        labels = {normalise(label): label for label in PROBLEM_LABELS}
        statuses = {normalise(status): status for status in STATUSES}
        words = {"candidate"}
        known: dict[str, list[str]] = {label: [label] for label in PROBLEM_LABELS}
        for path in sorted(Path(ui_dir).glob("*.yaml")):
            texts = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            shown = ((texts.get("questions") or {}).get("problems") or {}).get("labels") or {}
            answers = texts.get("answers") or {}
            for label, aliases in [
                *((k, [v]) for k, v in shown.items()),
                *(answers.get("problems") or {}).items(),
            ]:
                if label in PROBLEM_LABELS:
                    for alias in aliases or []:
                        labels.setdefault(normalise(str(alias)), label)
                        known[label].append(str(alias))
            for status, aliases in (answers.get("status") or {}).items():
                if status in STATUSES:
                    for alias in aliases or []:
                        statuses.setdefault(normalise(str(alias)), status)
            template = str((texts.get("fields") or {}).get("candidate") or "")
            word = normalise(template.replace("{n}", "")) if "{n}" in template else ""
            if word:
                words.add(word)
        return cls(labels, statuses, tuple(sorted(words)), known)

    def describe_labels(self) -> str:
        """``stereotype (estereotipo, estereótipo), …``: the ids with a few ways people write them."""
        parts = []
        for label, aliases in self.known_labels.items():
            seen = {normalise(label): label}
            for alias in aliases:
                if len(alias) <= 24:  # the short ways, not the full UI sentences
                    seen.setdefault(normalise(alias), alias)
            examples = list(seen.values())[1:4]
            parts.append(f"{label} ({', '.join(examples)})" if examples else label)
        return "; ".join(parts)


@dataclass
class Answer:
    """One validated line: slots are the record's own ``candidate_<n>`` names."""

    line: int
    dataset: str
    record_id: str
    user: str
    status: str
    values: dict[str, Any]


class _Line:
    """Collects the problems of one line."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.problems: list[str] = []

    def bad(self, message: str) -> None:
        self.problems.append(f"line {self.number}: {message}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid value")


def _shape(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"


class AnswerReader:
    """Validate an answers file against the exported records (``items``) and a :class:`Vocabulary`."""

    def __init__(self, items: dict[tuple[str, str], ReviewItem], vocabulary: Vocabulary) -> None:
        self.items = items
        self.vocabulary = vocabulary

    def read(self, path: Path) -> list[Answer]:
        """Every answer of ``path``, or :class:`AnswerFileError` listing every problem in it."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise AnswerFileError(Path(path), [f"cannot read the file: {exc.strerror or exc}"]) from None
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]  # a UTF-8 BOM, as some editors write
        answers: list[Answer] = []
        problems: list[str] = []
        first_line: dict[tuple[str, str, str], int] = {}
        for number, raw in enumerate(data.split(b"\n"), start=1):
            line = _Line(number)
            answer = self._line(raw, line)
            if answer is not None and not line.problems:
                key = (answer.dataset, answer.record_id, answer.user)
                if key in first_line:
                    line.bad(
                        f"user {answer.user!r} answers record {answer.record_id[:12]}… again "
                        f"(first on line {first_line[key]}); keep one answer per user and record"
                    )
                else:
                    first_line[key] = number
                    answers.append(answer)
            problems.extend(line.problems)
        if problems:
            raise AnswerFileError(Path(path), problems)
        if not answers:  # an empty file "imported" as 0 answers would look like success
            raise AnswerFileError(Path(path), ["the file has no answers (one JSON object per line)"])
        return answers

    # -- one line ------------------------------------------------------------------------------------
    def _line(self, raw: bytes, line: _Line) -> Answer | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line.bad(f"not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8")
            return None
        if not text.strip():
            return None
        try:
            row = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            line.bad("the JSON is nested too deeply")
            return None
        except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers too long to convert
            line.bad(f"not valid JSON: {str(exc).splitlines()[0][:160]}")
            return None
        if not isinstance(row, dict):
            line.bad(f"each line must be a JSON object, not {_shape(row)}")
            return None
        if "answer_with" in row and "user" not in row:  # the exported task itself, not yet answered
            line.bad(
                "this is an exported task, not an answer: write one line per reviewer with dataset, "
                "record_id, user, ranking, appropriate, problems, correction and status (see answer_with)"
            )
            return None
        dataset = self._text(row, "dataset", line, required=True)
        record_id = self._text(row, "record_id", line, required=True)
        user = self._text(row, "user", line, required=True)
        status = self._status(row.get("status"), line)
        item = None
        if dataset is not None and record_id is not None:
            item = self.items.get((dataset, record_id))
            if item is None:
                line.bad(f"record {record_id[:12]}… of {dataset!r} was never exported from this workspace")
        if item is None:
            return None
        slots = list(item.slots)
        values = {
            "ranking": self._ranking(row.get("ranking"), slots, line),
            "appropriate": self._appropriate(row.get("appropriate"), slots, line),
            "problems": None,
            "correction": self._correction(row.get("correction"), line),
        }
        values["problems"], by_slot = self._problems(row.get("problems"), slots, line)
        for label in PROBLEM_LABELS:  # per candidate, as Argilla stores it (one question per problem)
            flagged = sorted(slot for slot, labels in by_slot.items() if label in labels)
            if flagged:
                values[f"problem_{label}"] = flagged
        if line.problems or user is None or status is None:
            return None
        return Answer(line.number, dataset, record_id, user, status, values)  # type: ignore[arg-type]

    @staticmethod
    def _text(row: dict[str, Any], name: str, line: _Line, *, required: bool) -> str | None:
        value = row.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                line.bad(f"{name!r} is missing" + (' (who answered, e.g. "ana")' if name == "user" else ""))
            return None
        if not isinstance(value, str):
            line.bad(f"{name!r} must be text, not {_shape(value)}")
            return None
        return value.strip()

    def _status(self, value: Any, line: _Line) -> str | None:
        if value is None:
            return "submitted"
        if not isinstance(value, str) or normalise(value) not in self.vocabulary.statuses:
            known = sorted(set(self.vocabulary.statuses) - set(STATUSES))
            line.bad(
                f"status {value!r} is not one of submitted/discarded/draft"
                + (f" (or {', '.join(known)})" if known else "")
            )
            return None
        return self.vocabulary.statuses[normalise(value)]

    def _slot(self, value: Any, slots: list[str], line: _Line, what: str) -> str | None:
        """``candidate_2``, ``candidato 2``, ``Candidato_2``, ``2`` or ``"2"`` -> ``candidate_2``."""
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str):
            text = normalise(value)
            if text.isdigit():
                number = int(text)
            # "candidat" (ca) is a prefix of "candidate" and "candidato": the rest must be the number
            for word in self.vocabulary.candidate_words:
                rest = text[len(word) :].strip() if text.startswith(word) else ""
                if number is None and rest.isdigit():
                    number = int(rest)
        if number is None:
            line.bad(
                f"{what}: {_shape(value) if not isinstance(value, str) else repr(value)} is not a candidate"
            )
            return None
        slot = f"candidate_{number}"
        if slot not in slots:
            line.bad(f"{what}: unknown candidate {value!r} (this record has {slots[0]}…{slots[-1]})")
            return None
        return slot

    def _slot_list(self, value: Any, slots: list[str], line: _Line, what: str) -> list[Any] | None:
        if isinstance(value, str):
            return [part for part in _SEPARATORS.split(value.strip()) if part] if value.strip() else []
        if isinstance(value, list):
            return value
        line.bad(f"{what} must be a list of candidates, not {_shape(value)}")
        return None

    def _ranking(self, value: Any, slots: list[str], line: _Line) -> dict[str, int]:
        if value is None or value == [] or value == "":
            return {}
        ranks: dict[str, int] = {}
        before = len(line.problems)
        if isinstance(value, dict):
            pairs = list(value.items())
        elif isinstance(value, list) and value and all(isinstance(entry, dict) for entry in value):
            pairs = []
            for entry in value:
                if "value" not in entry:
                    line.bad(f"ranking: an entry without a candidate ('value'): {json.dumps(entry)[:80]}")
                    continue
                rank = entry.get("rank")
                pairs.append((entry["value"], len(pairs) + 1 if rank is None else rank))  # None: list order
        else:
            entries = self._slot_list(value, slots, line, "ranking")
            if entries is None:
                return {}
            if any(isinstance(entry, dict | list) for entry in entries):
                line.bad("ranking mixes candidates and objects; use a list of candidates, best first")
                return {}
            # A 2-candidate string like "candidate 2" splits on the space: rejoin word + number.
            entries = _rejoin(entries, self.vocabulary.candidate_words)
            pairs = [(entry, position) for position, entry in enumerate(entries, start=1)]
        for raw_slot, rank in pairs:
            slot = self._slot(raw_slot, slots, line, "ranking")
            if isinstance(rank, str) and rank.strip().isdigit():
                rank = int(rank.strip())  # {"candidato_1": "1"}, as a spreadsheet exports it
            if (
                isinstance(rank, bool)
                or not isinstance(rank, int | float)
                or not math.isfinite(rank)
                or rank != int(rank)
            ):
                line.bad(f"ranking: the rank of {raw_slot!r} must be a whole number, not {_shape(rank)}")
                continue
            if not 1 <= int(rank) <= len(slots):
                line.bad(f"ranking: rank {int(rank)} of {raw_slot!r} is outside 1..{len(slots)}")
                continue
            if slot is None:
                continue
            if slot in ranks:
                line.bad(f"ranking: {slot} appears twice")
                continue
            ranks[slot] = int(rank)
        return ranks if len(line.problems) == before else {}

    def _appropriate(self, value: Any, slots: list[str], line: _Line) -> list[str] | None:
        if value is None:
            return None  # not answered: no vote (see response_from_values)
        entries = self._slot_list(value, slots, line, "appropriate")
        if entries is None:
            return None
        chosen: list[str] = []
        for entry in _rejoin(entries, self.vocabulary.candidate_words):
            slot = self._slot(entry, slots, line, "appropriate")
            if slot is not None:
                if slot in chosen:
                    line.bad(f"appropriate: {slot} appears twice")
                else:
                    chosen.append(slot)
        return chosen

    def _label(self, value: Any, line: _Line) -> str | None:
        if isinstance(value, str) and normalise(value) in self.vocabulary.labels:
            return self.vocabulary.labels[normalise(value)]
        line.bad(f"problems: unknown label {value!r}; known labels: {self.vocabulary.describe_labels()}")
        return None

    def _labels(self, value: Any, line: _Line) -> list[str]:
        if isinstance(value, str):
            value = [part for part in re.split(r"\s*[,;|]\s*", value.strip()) if part]
        if not isinstance(value, list):
            line.bad(f"problems must be a list of labels, not {_shape(value)}")
            return []
        labels = [self._label(entry, line) for entry in value]
        return list(dict.fromkeys(label for label in labels if label))

    def _problems(self, value: Any, slots: list[str], line: _Line) -> tuple[list[str], dict[str, list[str]]]:
        """A list of labels for the record, or ``{candidate: [labels]}`` naming which caption has which problem."""
        if value is None or value == "":
            return [], {}
        if isinstance(value, dict):
            by_slot: dict[str, list[str]] = {}
            for raw_slot, labels in value.items():
                slot = self._slot(raw_slot, slots, line, "problems")
                found = self._labels(labels, line)
                if slot is not None and found:
                    by_slot[slot] = found
            return list(dict.fromkeys(label for found in by_slot.values() for label in found)), by_slot
        return self._labels(value, line), {}

    @staticmethod
    def _correction(value: Any, line: _Line) -> str | None:
        if value is None or isinstance(value, str):
            return value
        line.bad(f"correction must be text or null, not {_shape(value)}")
        return None


def _rejoin(entries: Iterable[Any], words: Iterable[str]) -> list[Any]:
    """``["candidato", "2", "candidato", "1"]`` (split on spaces) -> ``["candidato 2", "candidato 1"]``."""
    words = set(words)
    result: list[Any] = []
    for entry in entries:
        if (
            result
            and isinstance(entry, str)
            and entry.isdigit()
            and isinstance(result[-1], str)
            and normalise(result[-1]) in words
        ):
            result[-1] = f"{result[-1]} {entry}"
        else:
            result.append(entry)
    return result


def read_answers(path: Path, items: dict[tuple[str, str], ReviewItem], ui_dir: Path) -> list[Answer]:
    """Validated answers of ``path`` (see the module docstring), or :class:`AnswerFileError`."""
    return AnswerReader(items, Vocabulary.from_ui_dir(ui_dir)).read(path)
