"""An in-memory search engine for the real ``argilla-server`` 2.8.0, so it runs without Elasticsearch.

This module runs inside the server's own virtualenv (``venv_builder.py``), never in the project venv:
it imports ``argilla_server``. ``launcher.py`` imports it, which registers the engine under the name
``memory`` (``SearchEngine.register``); ``ARGILLA_SEARCH_ENGINE=memory`` selects it.

Trade-off: every dataset index is a dict of plain-Python documents in this process, searched by a linear
scan. That is exact and fast for the few thousand records a test or a local review session holds, and
needs no service; it is not meant for large datasets. The index is lost when the process exits, so the
launcher rebuilds it from SQLite at start-up (``rebuild_index``). One uvicorn worker only: a second worker
would hold a second, diverging index.

The semantics follow ``argilla_server/search_engine/commons.py`` (the Elasticsearch/OpenSearch engine),
document by document:

- a record document holds its text fields (image fields are excluded, as there), status, timestamps,
  the metadata of *declared* metadata properties, suggestions by question name, responses
  (id, status, user id, value per question) and vectors;
- filters: record properties, metadata (terms, ranges), suggestions (value/score/agent/type), responses
  by question value or by status, optionally for one user; ``pending`` means "no response" (from that
  user, or from anybody);
- text query: every whitespace-separated term (or quoted phrase) must occur, case-insensitively, as a
  substring of one of the searched text fields (Elasticsearch matches analysed tokens; a substring test
  is a superset that behaves the same on whole words); ``-term`` excludes;
- order: explicit sort keys (missing values last, lists by min/max like Elasticsearch), else a
  per-user deterministic shuffle for ``/me`` searches (Elasticsearch's ``random_score`` seeded by the
  user id), else relevance for a text query, else insertion order.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from argilla_server.enums import MetadataPropertyType, SimilarityOrder
from argilla_server.models import (
    Dataset,
    MetadataProperty,
    Record,
    Response,
    Suggestion,
    User,
    VectorSettings,
)
from argilla_server.search_engine.base import (
    AndFilter,
    Filter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)

__all__ = ["ENGINE_NAME", "MemorySearchEngine", "clear", "rebuild_index"]

ENGINE_NAME = "memory"
_LOGGER = logging.getLogger("mirada.memory_search")
_PENDING = "pending"


def _plain(value: Any) -> Any:
    """Enum members → their value, UUIDs → str, so documents hold only JSON-like data."""
    if isinstance(value, UUID):
        return str(value)
    return getattr(value, "value", value)


@dataclass
class _Index:
    """One dataset's documents, in insertion order (Elasticsearch's ``_doc`` order)."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)


# All engine instances share the store: the server creates one instance per request.
_STORE: dict[str, _Index] = {}


def clear() -> None:
    """Forget every index (used before a rebuild)."""
    _STORE.clear()


def _index_for(dataset_id: UUID | str, *, create: bool = False) -> _Index | None:
    key = str(dataset_id)
    if key not in _STORE and create:
        _STORE[key] = _Index()
    return _STORE.get(key)


def _require_doc(dataset_id: UUID | str, record_id: UUID | str) -> dict[str, Any]:
    """The stored document, or a clear error (Elasticsearch answers 404 on an update of a missing doc)."""
    index = _index_for(dataset_id)
    doc = index.docs.get(str(record_id)) if index else None
    if doc is None:
        raise LookupError(f"memory search engine: record {record_id} is not indexed in dataset {dataset_id}")
    return doc


# ---------------------------------------------------------------------------------------------- documents


def _field_text(value: Any) -> str:
    """Searchable text of a field value: chat fields are lists of ``{role, content}``."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(
            _field_text(item.get("content") if isinstance(item, dict) else item) for item in value
        )
    return str(value)


def _response_to_doc(response: Response) -> dict[str, Any]:
    return {
        "id": str(response.id),
        "status": _plain(response.status),
        "user_id": str(response.user_id),
        "values": {
            question: copy.deepcopy((value or {}).get("value"))
            for question, value in (response.values or {}).items()
        },
    }


def _suggestion_to_doc(suggestion: Suggestion) -> dict[str, Any]:
    return {
        "type": _plain(suggestion.type),
        "agent": suggestion.agent,
        "score": copy.deepcopy(suggestion.score),
        "value": copy.deepcopy(suggestion.value),
    }


def _record_to_doc(record: Record) -> dict[str, Any]:
    """Mirror ``_map_record_to_es_document``: same relationships read, same fields kept."""
    dataset = record.dataset
    fields: dict[str, str] = {}
    for dataset_field in dataset.fields:
        if dataset_field.is_image:
            continue
        fields[dataset_field.name] = _field_text(record.fields.get(dataset_field.name))

    doc: dict[str, Any] = {
        "id": str(record.id),
        "external_id": record.external_id,
        "fields": fields,
        "status": _plain(record.status),
        "inserted_at": record.inserted_at,
        "updated_at": record.updated_at,
        "metadata": {},
        "responses": [],
        "suggestions": {},
        "vectors": {},
    }
    if record.metadata_:
        for metadata_property in dataset.metadata_properties:
            value = record.metadata_.get(metadata_property.name)
            if value is not None:
                doc["metadata"][metadata_property.name] = copy.deepcopy(value)
    if record.responses:
        doc["responses"] = [_response_to_doc(response) for response in record.responses]
    if record.suggestions:
        doc["suggestions"] = {s.question.name: _suggestion_to_doc(s) for s in record.suggestions}
    if record.vectors:
        doc["vectors"] = {str(vector.vector_settings_id): list(vector.value) for vector in record.vectors}
    return doc


# ------------------------------------------------------------------------------------------------ filters


def _as_term(value: Any) -> str:
    """A value as Elasticsearch's keyword field sees it (``True`` → ``"true"``)."""
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _values_of(value: Any) -> list[Any]:
    """Elasticsearch treats a list as many values of one field."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [v for v in value if v is not None]
    return [value]


def _to_datetime(value: Any) -> datetime:
    """A range bound for a date field: ISO text or epoch milliseconds (Elasticsearch's default)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float):
        parsed = datetime.fromtimestamp(value / 1000, tz=UTC)
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is not None:  # the server stores naive UTC timestamps
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _in_range(value: Any, ge: Any, le: Any) -> bool:
    for bound, ok in ((ge, lambda v, b: v >= b), (le, lambda v, b: v <= b)):
        if bound is None:
            continue
        try:
            if isinstance(value, datetime):
                if not ok(value, _to_datetime(bound)):
                    return False
            elif isinstance(value, int | float) and not isinstance(value, bool):
                if not ok(float(value), float(bound)):
                    return False
            elif not ok(str(value), str(bound)):
                return False
        except (TypeError, ValueError):
            return False
    return True


def _value_matches(value: Any, flt: TermsFilter | RangeFilter) -> bool:
    candidates = _values_of(value)
    if isinstance(flt, TermsFilter):
        wanted = {_as_term(v) for v in flt.values}
        return any(_as_term(v) in wanted for v in candidates)
    return any(_in_range(v, flt.ge, flt.le) for v in candidates)


def _user_responses(doc: dict[str, Any], user: User | None) -> list[dict[str, Any]]:
    if user is None:
        return doc["responses"]
    return [r for r in doc["responses"] if r["user_id"] == str(user.id)]


def _response_matches(doc: dict[str, Any], flt: TermsFilter | RangeFilter) -> bool:
    scope: ResponseFilterScope = flt.scope
    responses = _user_responses(doc, scope.user)
    if scope.question:
        return any(_value_matches(r["values"].get(scope.question), flt) for r in responses)
    if scope.property == "status" and isinstance(flt, TermsFilter):
        wanted = {_as_term(v) for v in flt.values}
        if _PENDING in wanted and not responses:
            return True
        return any(r["status"] in wanted for r in responses)
    raise ValueError(f"memory search engine: cannot process response filter scope {scope}")


def _scope_value(doc: dict[str, Any], scope: Any) -> Any:
    if isinstance(scope, RecordFilterScope):
        return doc.get(str(_plain(scope.property)))
    if isinstance(scope, MetadataFilterScope):
        return doc["metadata"].get(scope.metadata_property)
    if isinstance(scope, SuggestionFilterScope):
        return doc["suggestions"].get(scope.question, {}).get(str(scope.property or "value"))
    raise ValueError(f"memory search engine: cannot process search scope {scope}")


def _matches(doc: dict[str, Any], flt: Filter | None) -> bool:
    if flt is None:
        return True
    if isinstance(flt, AndFilter):
        return all(_matches(doc, f) for f in flt.filters)
    if isinstance(flt.scope, ResponseFilterScope):
        return _response_matches(doc, flt)
    return _value_matches(_scope_value(doc, flt.scope), flt)


# --------------------------------------------------------------------------------------------- text query

_TERM_RE = re.compile(r'(-?)"([^"]*)"|(\S+)')


def _parse_text_query(q: str) -> tuple[list[str], list[str]]:
    """``'tacos "al pastor" -salsa'`` → (["tacos", "al pastor"], ["salsa"]); ``*`` and ``+`` are dropped."""
    required: list[str] = []
    excluded: list[str] = []
    for negated_phrase, phrase, word in _TERM_RE.findall(q):
        negated = bool(negated_phrase)
        term = phrase
        if word:
            negated = word.startswith("-") and len(word) > 1
            term = word[1:] if negated else word
        term = term.replace("*", "").strip().lstrip("+").casefold()
        if term and term not in {"|", "and", "or"}:
            (excluded if negated else required).append(term)
    return required, excluded


def _text_score(doc: dict[str, Any], dataset: Dataset, query: TextQuery | str | None) -> float | None:
    """``None`` if the document does not match, else a relevance score (occurrences of the terms)."""
    if query is None:
        return 1.0
    if isinstance(query, str):
        query = TextQuery(q=query)
    if query.field:
        if dataset.field_by_name(query.field) is None:
            raise ValueError(f"Field {query.field} not found in dataset {dataset.id}")
        texts = [doc["fields"].get(query.field, "")]
    else:
        texts = list(doc["fields"].values())
    haystack = "\n".join(texts).casefold()
    required, excluded = _parse_text_query(query.q)
    if any(term in haystack for term in excluded):
        return None
    if not required:
        return 1.0 if excluded else None
    counts = [haystack.count(term) for term in required]
    if not all(counts):
        return None
    return float(sum(counts))


# ------------------------------------------------------------------------------------------------ sorting


def _sort_value(doc: dict[str, Any], order: Order) -> Any:
    scope = order.scope
    descending = str(_plain(order.order)) == "desc"
    if isinstance(scope, ResponseFilterScope):
        key = scope.question or scope.property
        values = [
            r["values"].get(key) if scope.question else r.get(key) for r in _user_responses(doc, scope.user)
        ]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers:  # Elasticsearch: nested sort with mode "avg"
            return sum(numbers) / len(numbers)
        terms = sorted(_as_term(v) for v in values if v is not None and not isinstance(v, list | dict))
        return (terms[-1] if descending else terms[0]) if terms else None
    values = _values_of(_scope_value(doc, scope))
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    try:  # Elasticsearch sorts a multi-valued field by its min (asc) or max (desc)
        return max(values) if descending else min(values)
    except TypeError:
        return None


def _type_rank(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return 1
    if isinstance(value, datetime):
        return 2
    return 3


def _compare(a: Any, b: Any) -> int:
    ra, rb = _type_rank(a), _type_rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 3:
        a, b = _as_term(a), _as_term(b)
    return (a > b) - (a < b)


def _sort_docs(docs: list[dict[str, Any]], sort: list[Order]) -> list[dict[str, Any]]:
    keyed = [(doc, [_sort_value(doc, order) for order in sort]) for doc in docs]

    def cmp(x: tuple[dict[str, Any], list[Any]], y: tuple[dict[str, Any], list[Any]]) -> int:
        for order, a, b in zip(sort, x[1], y[1], strict=True):
            if a is None or b is None:  # missing values last, whatever the direction
                if a is None and b is None:
                    continue
                return 1 if a is None else -1
            result = _compare(a, b)
            if result:
                return -result if str(_plain(order.order)) == "desc" else result
        return 0

    keyed.sort(key=functools.cmp_to_key(cmp))  # stable: ties keep insertion order
    return [doc for doc, _ in keyed]


def _user_shuffle_key(user_id: Any, doc: dict[str, Any]) -> str:
    return hashlib.sha256(f"{user_id}:{doc['id']}".encode()).hexdigest()


# ------------------------------------------------------------------------------------------------ vectors


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


# ------------------------------------------------------------------------------------------------- engine


@SearchEngine.register(ENGINE_NAME)
class MemorySearchEngine(SearchEngine):
    """``SearchEngine`` over the module-level store; every method is synchronous inside, hence atomic
    with respect to the single event loop of the single uvicorn worker."""

    @classmethod
    async def new_instance(cls) -> MemorySearchEngine:
        return cls()

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def info(self) -> dict:
        return {
            "name": ENGINE_NAME,
            "cluster_name": "mirada-memory",
            "version": {"number": "2.8.0-memory", "distribution": ENGINE_NAME},
            "indices": len(_STORE),
            "documents": sum(len(index.docs) for index in _STORE.values()),
        }

    # -- indices -----------------------------------------------------------------------------------------

    async def create_index(self, dataset: Dataset) -> None:
        _index_for(dataset.id, create=True)

    async def delete_index(self, dataset: Dataset) -> None:
        _STORE.pop(str(dataset.id), None)

    async def configure_metadata_property(
        self, dataset: Dataset, metadata_property: MetadataProperty
    ) -> None:
        # Like an Elasticsearch mapping update: documents indexed earlier keep no value for it.
        _index_for(dataset.id, create=True)

    async def configure_index_vectors(self, vector_settings: VectorSettings) -> None:
        return None

    # -- documents ---------------------------------------------------------------------------------------

    async def index_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        index = _index_for(dataset.id, create=True)
        for record in records:
            doc = _record_to_doc(record)
            index.docs[doc["id"]] = doc  # "index" op: replace, keep the original position

    async def partial_record_update(self, record: Record, **update: Any) -> None:
        doc = _require_doc(record.dataset_id, record.id)
        doc.update({key: _plain(value) for key, value in update.items()})

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        index = _index_for(dataset.id)
        if index is None:
            return
        for record in records:
            index.docs.pop(str(record.id), None)

    async def update_record_response(self, response: Response) -> None:
        doc = _require_doc(response.record.dataset_id, response.record_id)
        new = _response_to_doc(response)
        doc["responses"] = [r for r in doc["responses"] if r["id"] != new["id"]] + [new]

    async def delete_record_response(self, response: Response) -> None:
        doc = _require_doc(response.record.dataset_id, response.record_id)
        doc["responses"] = [r for r in doc["responses"] if r["id"] != str(response.id)]

    async def update_record_suggestion(self, suggestion: Suggestion) -> None:
        doc = _require_doc(suggestion.record.dataset_id, suggestion.record_id)
        doc["suggestions"][suggestion.question.name] = _suggestion_to_doc(suggestion)

    async def delete_record_suggestion(self, suggestion: Suggestion) -> None:
        doc = _require_doc(suggestion.record.dataset_id, suggestion.record_id)
        doc["suggestions"].pop(suggestion.question.name, None)

    # -- metrics -----------------------------------------------------------------------------------------

    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        if dataset.is_draft:
            return {}
        index = _index_for(dataset.id)
        docs = index.docs.values() if index else []
        counts = Counter(doc["status"] for doc in docs if doc.get("status") is not None)
        return {"total": sum(counts.values()), **counts}

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        # Counts this user's responses by status. (The Elasticsearch engine aggregates the root-level
        # copy of *all* responses of the records the user answered, which over-counts with overlap.)
        if dataset.is_draft:
            return {}
        index = _index_for(dataset.id)
        docs = index.docs.values() if index else []
        counts = Counter(r["status"] for doc in docs for r in _user_responses(doc, user))
        return {"total": sum(counts.values()), **counts}

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        index = _index_for(metadata_property.dataset_id)
        docs = list(index.docs.values()) if index else []
        values = [v for doc in docs for v in _values_of(doc["metadata"].get(metadata_property.name))]
        if metadata_property.type == MetadataPropertyType.terms:
            doc_counts: Counter[str] = Counter()
            for doc in docs:
                doc_counts.update(
                    {_as_term(v) for v in _values_of(doc["metadata"].get(metadata_property.name))}
                )
            buckets = sorted(doc_counts.items(), key=lambda item: (-item[1], item[0]))
            return TermsMetrics(
                total=len(values), values=[TermsMetrics.TermCount(term=t, count=c) for t, c in buckets]
            )
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        metrics_class = (
            IntegerMetadataMetrics
            if metadata_property.type == MetadataPropertyType.integer
            else FloatMetadataMetrics
        )
        return metrics_class(min=min(numbers) if numbers else None, max=max(numbers) if numbers else None)

    # -- search ------------------------------------------------------------------------------------------

    async def search(
        self,
        dataset: Dataset,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        sort: list[Order] | None = None,
        offset: int = 0,
        limit: int = 100,
        user_id: str | UUID | None = None,
    ) -> SearchResponses:
        index = _index_for(dataset.id)
        scored: list[tuple[dict[str, Any], float]] = []
        for doc in index.docs.values() if index else []:
            if not _matches(doc, filter):
                continue
            score = _text_score(doc, dataset, query)
            if score is not None:
                scored.append((doc, score))

        if sort:
            scores = {doc["id"]: score for doc, score in scored}
            ordered = [(doc, scores[doc["id"]]) for doc in _sort_docs([doc for doc, _ in scored], sort)]
        elif user_id is not None:
            ordered = sorted(scored, key=lambda item: _user_shuffle_key(user_id, item[0]))
        elif query is not None:
            ordered = sorted(scored, key=lambda item: -item[1])
        else:
            ordered = scored

        page = ordered[offset : offset + limit]
        return SearchResponses(
            items=[SearchResponseItem(record_id=UUID(doc["id"]), score=score) for doc, score in page],
            total=len(scored),
        )

    async def similarity_search(
        self,
        dataset: Dataset,
        vector_settings: VectorSettings,
        value: list[float] | None = None,
        record: Record | None = None,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        max_results: int = 100,
        order: SimilarityOrder = SimilarityOrder.most_similar,
        threshold: float | None = None,
    ) -> SearchResponses:
        if bool(value) == bool(record):
            raise ValueError("Must provide either vector value or record to compute the similarity search")
        vector_value = value
        excluded_id = None
        if not vector_value:
            excluded_id = str(record.id)
            vector_value = record.vector_value_by_vector_settings(vector_settings)
        if not vector_value:
            raise ValueError("Cannot find a vector value to apply with provided info")
        if order == SimilarityOrder.least_similar:
            vector_value = [-x for x in vector_value]

        index = _index_for(dataset.id)
        key = str(vector_settings.id)
        hits: list[tuple[dict[str, Any], float]] = []
        for doc in index.docs.values() if index else []:
            vector = doc["vectors"].get(key)
            if vector is None or doc["id"] == excluded_id or not _matches(doc, filter):
                continue
            if query is not None and _text_score(doc, dataset, query) is None:
                continue
            score = (1.0 + _cosine(vector_value, vector)) / 2.0  # Elasticsearch's cosine score
            if threshold is None or score >= threshold:
                hits.append((doc, score))
        hits.sort(key=lambda item: -item[1])
        hits = hits[:max_results]
        return SearchResponses(
            items=[SearchResponseItem(record_id=UUID(doc["id"]), score=score) for doc, score in hits],
            total=len(hits),
        )


async def rebuild_index() -> tuple[int, int]:
    """Re-index every dataset and record from the server database; returns (datasets, records).

    Uses the server's own ``Reindexer`` queries (``argilla_server/cli/search_engine/reindex.py``), so the
    documents are built from exactly the relationships the server loads for Elasticsearch.
    """
    from argilla_server.cli.search_engine.reindex import Reindexer
    from argilla_server.database import AsyncSessionLocal

    clear()
    engine = MemorySearchEngine()
    datasets = records = 0
    async with AsyncSessionLocal() as db:
        async for dataset in Reindexer.reindex_datasets(db, engine):
            datasets += 1
            async for batch in Reindexer.reindex_dataset_records(db, engine, dataset):
                records += len(batch)
    _LOGGER.info("memory search engine: indexed %d records of %d datasets", records, datasets)
    return datasets, records
