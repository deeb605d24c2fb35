"""The recommendations catalog: the items an accepted suggestion may show, with their topics.

A catalog file is JSON (``{"items": [...]}``) or, by its extension ``.yaml``/``.yml``, the same
in YAML. Each item::

    {
      "id": "python-perf-tips",                 # unique; letters, digits, _ . : - (max 64)
      "title": {"ko": "...", "en": "..."},      # at least one; or a string in the item's language
      "url": "https://...",                     # http or https only
      "topics": ["python", "performance"],      # at least one topic id
      "language": "ko" | "en" | "any",          # the language of the resource itself
      "published": "2024-05-01" | null,         # optional: for the freshness of the ranking
      "summary": {"ko": "...", "en": "..."}     # optional
    }

:meth:`Catalog.load` checks every item and reports every problem at once, each naming the
file, the item (index and id) and the field: an operator fixing a catalog of a hundred items
should not need a hundred restarts. Topic ids the bot does not extract (:data:`TOPIC_IDS`) are
kept with a warning: a recommender service may know them, and they still describe the item.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

__all__ = [
    "DEFAULT_CATALOG",
    "LANGUAGES",
    "TOPIC_IDS",
    "Catalog",
    "CatalogError",
    "CatalogItem",
    "ItemLanguage",
    "parse_item",
]

log = logging.getLogger(__name__)

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "data" / "recommendations.sample.json"

# The topics the bot tracks in a user's messages (the interest profile's keys).
TOPIC_IDS: tuple[str, ...] = (
    "python", "javascript", "typescript", "java", "rust", "golang", "cpp", "sql",
    "machine_learning", "deep_learning", "llm", "data_analysis", "web_development",
    "mobile_apps", "devops", "cloud", "security", "algorithms", "performance", "git", "linux",
    "cooking", "travel", "fitness", "running", "investing", "real_estate", "english_learning",
    "japanese_learning", "music", "movies", "books", "photography", "gaming", "career",
    "startup", "parenting", "pets", "coffee", "gardening",
)  # fmt: skip
_KNOWN_TOPICS = frozenset(TOPIC_IDS)

ItemLanguage = Literal["ko", "en", "any"]
LANGUAGES: tuple[ItemLanguage, ...] = ("ko", "en", "any")
_TEXT_LANGUAGES = ("ko", "en")  # the languages a title or summary may be given in

# Ids travel in button payloads (Telegram's callback data is at most 64 bytes, shared with
# the action) and in logs, so they are short and plain.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_MAX_URL = 2048
_MAX_TEXT = 500
_FIELDS = frozenset({"id", "title", "url", "topics", "language", "published", "summary"})


class CatalogError(ValueError):
    """A catalog (or a recommender's item) that cannot be used; ``problems`` lists each one,
    naming the item and the field."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        shown = list(self.problems[:20])
        if len(self.problems) > len(shown):
            shown.append(f"... and {len(self.problems) - len(shown)} more")
        count = len(self.problems)
        super().__init__(
            f"{source}: {count} problem{'s' if count != 1 else ''}:\n  " + "\n  ".join(shown)
        )


class _Invalid(Exception):
    """One field's problem, raised inside :func:`parse_item` and collected by the caller."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One resource that can be recommended. Build it with :func:`parse_item` (or load a
    :class:`Catalog`), which checks the fields; the constructor trusts its arguments."""

    id: str
    title: Mapping[str, str]  # "ko" and/or "en", at least one
    url: str
    topics: tuple[str, ...]
    language: ItemLanguage = "any"
    published: date | None = None
    summary: Mapping[str, str] = field(default_factory=dict)

    def __hash__(self) -> int:
        # The title and summary are dicts; equal items have equal ids.
        return hash(self.id)

    def title_in(self, lang: str) -> str:
        """The title in ``lang``, else in English, else in Korean (one of them always exists)."""
        return _pick(self.title, lang) or ""

    def summary_in(self, lang: str) -> str | None:
        """The summary like :meth:`title_in`; None without one."""
        return _pick(self.summary, lang)


def _pick(texts: Mapping[str, str], lang: str) -> str | None:
    for key in (lang, "en", "ko"):
        text = texts.get(key)
        if text:
            return text
    return None


# ---- checking one item --------------------------------------------------------------------


def parse_item(
    raw: Any, *, extra_fields: bool = False, default_language: ItemLanguage | None = None
) -> CatalogItem:
    """A checked :class:`CatalogItem` from a decoded JSON/YAML object.

    Raises :class:`CatalogError` (source ``"item"``) listing every bad field. Unknown fields
    are problems unless ``extra_fields`` (a catalog file's typo "topic" must not silently drop
    the topics; a recommender service may add fields of its own). Without
    ``default_language`` the ``language`` field is required.
    """
    problems = _item_problems(raw, extra_fields, default_language)
    if isinstance(problems, CatalogItem):
        return problems
    raise CatalogError("item", problems)


def _item_problems(
    raw: Any, extra_fields: bool, default_language: ItemLanguage | None
) -> CatalogItem | list[str]:
    if not isinstance(raw, Mapping):
        return [f"must be an object, got {_kind(raw)}"]
    problems: list[str] = []

    def check(parse: Callable[[], Any]) -> Any:
        try:
            return parse()
        except _Invalid as exc:
            problems.append(str(exc))
            return None

    if not extra_fields:
        for name in sorted(set(map(str, raw)) - _FIELDS):
            problems.append(f"{name}: unknown field (expected {', '.join(sorted(_FIELDS))})")
    item_id = check(lambda: _id(raw.get("id")))
    language = check(lambda: _language(raw.get("language"), default_language))
    title = check(lambda: _texts("title", raw.get("title"), language, required=True))
    url = check(lambda: _url(raw.get("url")))
    topics = check(lambda: _topics(raw.get("topics")))
    published = check(lambda: _published(raw.get("published")))
    summary = check(lambda: _texts("summary", raw.get("summary"), language, required=False))
    if problems:
        return problems
    return CatalogItem(
        id=item_id,
        title=title,
        url=url,
        topics=topics,
        language=language,
        published=published,
        summary=summary,
    )


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        got = "an empty string" if value == "" else _kind(value)
        raise _Invalid("id", f"required, a non-empty string (got {got})")
    if not _ID.match(value):
        raise _Invalid(
            "id", f"{value[:80]!r}: use 1-64 letters, digits and _ . : - (starting alphanumeric)"
        )
    return value


def _language(value: Any, default: ItemLanguage | None) -> ItemLanguage:
    if value is None and default is not None:
        return default
    for known in LANGUAGES:
        if value == known:
            return known
    got = "missing" if value is None else repr(value)[:40]
    raise _Invalid("language", f"{got}: expected one of {', '.join(LANGUAGES)}")


def _texts(name: str, value: Any, language: Any, *, required: bool) -> dict[str, str]:
    if value is None:
        if required:
            raise _Invalid(name, 'required: {"ko": ..., "en": ...} with at least one of them')
        return {}
    if isinstance(value, str):
        # A plain string is in the item's own language (English for "any").
        value = {language if language in _TEXT_LANGUAGES else "en": value}
    if not isinstance(value, Mapping):
        raise _Invalid(name, f'expected {{"ko": ..., "en": ...}} or a string, got {_kind(value)}')
    texts: dict[str, str] = {}
    for key, text in value.items():
        if key not in _TEXT_LANGUAGES:
            raise _Invalid(name, f"{str(key)[:20]!r}: only 'ko' and 'en' are supported")
        if not isinstance(text, str) or not text.strip():
            raise _Invalid(f"{name}.{key}", "must be a non-empty string")
        if len(text) > _MAX_TEXT:
            raise _Invalid(f"{name}.{key}", f"longer than {_MAX_TEXT} characters")
        texts[key] = text.strip()
    if required and not texts:
        raise _Invalid(name, "needs at least one of 'ko' and 'en'")
    return texts


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid("url", f"required, a non-empty string (got {_kind(value)})")
    shown = repr(value[:80])
    if len(value) > _MAX_URL:
        raise _Invalid("url", f"longer than {_MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _Invalid("url", f"{shown}: contains whitespace or control characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError as exc:
        raise _Invalid("url", f"{shown}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _Invalid("url", f"{shown}: only http and https URLs can be recommended")
    if not host:
        raise _Invalid("url", f"{shown}: no host")
    return value


def _topics(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise _Invalid("topics", f"required, a non-empty list of topic ids (got {_kind(value)})")
    topics: list[str] = []
    for topic in value:
        if not isinstance(topic, str) or not topic.strip():
            raise _Invalid("topics", f"{topic!r}: a topic id is a non-empty string")
        if topic not in topics:
            topics.append(topic)
    return tuple(topics)


def _published(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # YAML reads "2024-05-01 10:00:00" as a datetime
        return value.date()
    if isinstance(value, date):  # YAML reads 2024-05-01 as a date
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _Invalid("published", f"{str(value)[:40]!r}: expected a date YYYY-MM-DD or null")


# ---- the catalog --------------------------------------------------------------------------


class Catalog:
    """The items, by id and by topic. Immutable once built; lookups are dict reads."""

    __slots__ = ("_by_id", "_by_topic", "items", "source")

    def __init__(self, items: Iterable[CatalogItem], *, source: str = "catalog") -> None:
        self.items: tuple[CatalogItem, ...] = tuple(items)
        self.source = source
        by_id: dict[str, CatalogItem] = {}
        first: dict[str, int] = {}
        duplicates: list[str] = []
        for index, item in enumerate(self.items):
            if item.id in by_id:
                duplicates.append(
                    f"item {index} (id {item.id!r}): id: duplicate of item {first[item.id]}"
                )
                continue
            by_id[item.id] = item
            first[item.id] = index
        if duplicates:
            raise CatalogError(source, duplicates)
        by_topic: dict[str, list[CatalogItem]] = {}
        for item in self.items:
            for topic in item.topics:
                by_topic.setdefault(topic, []).append(item)
        self._by_id = by_id
        self._by_topic = {topic: tuple(items) for topic, items in by_topic.items()}

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[CatalogItem]:
        return iter(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def get(self, item_id: str) -> CatalogItem | None:
        return self._by_id.get(item_id)

    def with_topic(self, topic: str) -> tuple[CatalogItem, ...]:
        """The items tagged ``topic``, in catalog order."""
        return self._by_topic.get(topic, ())

    @property
    def topics(self) -> frozenset[str]:
        """Every topic id some item has."""
        return frozenset(self._by_topic)

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        """Read and check a JSON or YAML (``.yaml``/``.yml``) catalog.

        Raises :class:`CatalogError` naming the file and every problem."""
        path = Path(path)
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(name, [f"cannot read the file: {exc}"]) from exc
        data = _decode(name, text, yaml_file=path.suffix.lower() in (".yaml", ".yml"))
        if not isinstance(data, Mapping) or "items" not in data:
            raise CatalogError(name, ['expected an object {"items": [...]} at the top'])
        raw_items = data["items"]
        if not isinstance(raw_items, list):
            raise CatalogError(name, [f"items: expected a list, got {_kind(raw_items)}"])
        items: list[CatalogItem] = []
        problems: list[str] = []
        for index, raw in enumerate(raw_items):
            found = _item_problems(raw, extra_fields=False, default_language=None)
            if isinstance(found, CatalogItem):
                items.append(found)
                continue
            raw_id = raw.get("id") if isinstance(raw, Mapping) else None
            label = f"item {index}"
            if raw_id and isinstance(raw_id, str):
                label += f" (id {raw_id[:80]!r})"
            problems.extend(f"{label}: {problem}" for problem in found)
        if problems:
            raise CatalogError(name, problems)
        # Duplicates are reported with the indexes in the file (every item parsed).
        catalog = cls(items, source=name)
        _warn_unknown_topics(catalog)
        if not catalog.items:
            log.warning("the recommendations catalog %s has no items: nothing to recommend", name)
        return catalog


def _decode(name: str, text: str, *, yaml_file: bool) -> Any:
    if yaml_file:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CatalogError(name, [f"not valid YAML: {exc}"]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(
            name, [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
        ) from None


def _warn_unknown_topics(catalog: Catalog) -> None:
    unknown = Counter(t for item in catalog.items for t in item.topics if t not in _KNOWN_TOPICS)
    if unknown:
        listed = ", ".join(f"{topic} ({n})" for topic, n in sorted(unknown.items()))
        log.warning(
            "the recommendations catalog %s uses topic ids the bot does not track: %s; "
            "kept (a recommender service may use them, but no suggestion is about them)",
            catalog.source,
            listed,
        )
