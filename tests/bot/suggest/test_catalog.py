"""The recommendations catalog: loading JSON and YAML, every validation error, the sample."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.suggest.catalog import (
    DEFAULT_CATALOG,
    TOPIC_IDS,
    Catalog,
    CatalogError,
    CatalogItem,
    parse_item,
)


def item(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "py-docs",
        "title": {"ko": "파이썬 문서", "en": "Python docs"},
        "url": "https://docs.python.org/3/",
        "topics": ["python"],
        "language": "en",
        "published": "2024-10-07",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()  # item(url=_DROP): the field is left out


def write_json(tmp_path: Path, items: Any, name: str = "catalog.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"items": items}, ensure_ascii=False), encoding="utf-8")
    return path


def load_error(tmp_path: Path, items: Any) -> CatalogError:
    path = write_json(tmp_path, items)
    with pytest.raises(CatalogError) as caught:
        Catalog.load(path)
    assert str(path) in str(caught.value)
    return caught.value


# ---- loading -------------------------------------------------------------------------------


def test_json_catalog_loads_every_field(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        [
            item(summary={"ko": "공식 문서", "en": "The official docs"}),
            item(
                id="jump-to-python",
                title={"ko": "점프 투 파이썬"},
                url="http://wikidocs.net/book/1",
                topics=["python", "python", "algorithms"],
                language="ko",
                published=None,
            ),
        ],
    )
    catalog = Catalog.load(path)
    assert len(catalog) == 2 and catalog.source == str(path)
    first = catalog.items[0]
    assert first == CatalogItem(
        id="py-docs",
        title={"ko": "파이썬 문서", "en": "Python docs"},
        url="https://docs.python.org/3/",
        topics=("python",),
        language="en",
        published=date(2024, 10, 7),
        summary={"ko": "공식 문서", "en": "The official docs"},
    )
    second = catalog.get("jump-to-python")
    assert second is not None
    assert second.topics == ("python", "algorithms")  # duplicates dropped, order kept
    assert second.published is None and second.summary == {}
    assert second.summary_in("ko") is None


def test_yaml_catalog_loads_by_extension(tmp_path: Path) -> None:
    text = """\
items:
  - id: pro-git-ko
    title: Pro Git 한국어판   # a plain string is in the item's language
    url: https://git-scm.com/book/ko/v2
    topics: [git]
    language: ko
    published: 2014-11-01      # YAML reads this as a date
  - id: sre-book
    title: {en: Site Reliability Engineering}
    url: https://sre.google/sre-book/table-of-contents/
    topics: [devops, cloud]
    language: any
    published: "2016-04-16"
  - id: linux-perf
    title: {en: Linux Performance}
    url: https://www.brendangregg.com/linuxperf.html
    topics: [linux, performance]
    language: en
    published: 2022-03-01 10:00:00
"""
    for suffix in (".yaml", ".yml", ".YAML"):
        path = tmp_path / f"catalog{suffix}"
        path.write_text(text, encoding="utf-8")
        catalog = Catalog.load(path)
        assert [i.id for i in catalog] == ["pro-git-ko", "sre-book", "linux-perf"]
        git = catalog.items[0]
        assert git.title == {"ko": "Pro Git 한국어판"} and git.published == date(2014, 11, 1)
        assert catalog.items[1].title == {"en": "Site Reliability Engineering"}
        assert catalog.items[1].language == "any"
        assert catalog.items[2].published == date(2022, 3, 1)


def test_other_extensions_are_read_as_json(tmp_path: Path) -> None:
    path = tmp_path / "recommendations.txt"
    path.write_text(json.dumps({"items": [item()]}), encoding="utf-8")
    assert [i.id for i in Catalog.load(path)] == ["py-docs"]


def test_title_and_summary_fall_back_to_another_language() -> None:
    english = parse_item(item(title={"en": "Python docs"}, summary={"en": "Docs"}))
    korean = parse_item(item(title={"ko": "파이썬 문서"}))
    both = parse_item(item())
    assert english.title_in("ko") == "Python docs"
    assert english.summary_in("ko") == "Docs"
    assert korean.title_in("en") == "파이썬 문서"
    assert both.title_in("ko") == "파이썬 문서" and both.title_in("en") == "Python docs"
    assert both.title_in("ja") == "Python docs"  # other languages read English first
    assert korean.title_in("ja") == "파이썬 문서"


def test_a_plain_string_title_is_in_the_items_language() -> None:
    assert parse_item(item(title="파이썬", language="ko")).title == {"ko": "파이썬"}
    assert parse_item(item(title="Python", language="en")).title == {"en": "Python"}
    assert parse_item(item(title="Python", language="any")).title == {"en": "Python"}


def test_indexes_by_id_and_topic() -> None:
    items = [
        parse_item(item(id="a", topics=["python", "performance"])),
        parse_item(item(id="b", topics=["performance"])),
        parse_item(item(id="c", topics=["python"])),
    ]
    catalog = Catalog(items)
    assert "a" in catalog and "z" not in catalog
    assert catalog.get("b") is items[1] and catalog.get("z") is None
    assert [i.id for i in catalog.with_topic("python")] == ["a", "c"]
    assert [i.id for i in catalog.with_topic("performance")] == ["a", "b"]
    assert catalog.with_topic("cooking") == ()
    assert catalog.topics == {"python", "performance"}
    assert len({items[0], items[0]}) == 1  # items are hashable despite their dict fields


def test_parse_item_options() -> None:
    with pytest.raises(CatalogError, match="language: missing"):
        parse_item(item(language=_DROP))
    assert parse_item(item(language=_DROP), default_language="any").language == "any"
    with pytest.raises(CatalogError, match="score: unknown field"):
        parse_item(item(score=0.9))
    assert parse_item(item(score=0.9), extra_fields=True).id == "py-docs"


# ---- validation ----------------------------------------------------------------------------

BAD_ITEMS: list[tuple[dict[str, Any], str]] = [
    (item(id=_DROP), "item 0: id: required"),
    (item(id=""), "item 0: id: required"),
    (item(id=7), "item 0: id: required, a non-empty string (got int)"),
    (item(id="has space"), "item 0 (id 'has space'): id: 'has space': use 1-64"),
    (item(id="x" * 65), "id: 'xxxx"),
    (item(id="-leading"), "id: '-leading'"),
    (item(title=_DROP), "item 0 (id 'py-docs'): title: required"),
    (item(title={}), "title: needs at least one of 'ko' and 'en'"),
    (item(title={"ja": "パイソン"}), "title: 'ja': only 'ko' and 'en' are supported"),
    (item(title={"ko": "  "}), "title.ko: must be a non-empty string"),
    (item(title={"en": 3}), "title.en: must be a non-empty string"),
    (item(title=["Python"]), "title: expected"),
    (item(title={"en": "x" * 501}), "title.en: longer than 500 characters"),
    (item(url=_DROP), "item 0 (id 'py-docs'): url: required"),
    (item(url="ftp://example.com/file"), "url: 'ftp://example.com/file': only http and https"),
    (item(url="javascript:alert(1)"), "url: 'javascript:alert(1)': only http and https"),
    (item(url="docs.python.org/3/"), "only http and https"),
    (item(url="https://"), "url: 'https://': no host"),
    (item(url="https://exa mple.com/"), "url: 'https://exa mple.com/': contains whitespace"),
    (item(url="https://example.com/\x00"), "contains whitespace or control characters"),
    (item(url="http://[::1/"), "url: 'http://[::1/': Invalid IPv6 URL"),
    (item(url="https://example.com/" + "a" * 2048), "url: longer than 2048 characters"),
    (item(topics=_DROP), "item 0 (id 'py-docs'): topics: required"),
    (item(topics=[]), "topics: required, a non-empty list"),
    (item(topics="python"), "topics: required, a non-empty list of topic ids (got str)"),
    (item(topics=["python", 3]), "topics: 3: a topic id is a non-empty string"),
    (item(topics=[""]), "topics: '': a topic id is a non-empty string"),
    (item(language=_DROP), "item 0 (id 'py-docs'): language: missing: expected one of ko, en, any"),
    (item(language="jp"), "language: 'jp': expected one of ko, en, any"),
    (item(language="KO"), "language: 'KO'"),
    (item(published="2024-13-01"), "published: '2024-13-01': expected a date YYYY-MM-DD"),
    (item(published="yesterday"), "published: 'yesterday'"),
    (item(published=20241007), "published: '20241007'"),
    (item(summary="x" * 501), "summary.en: longer than 500 characters"),
    (item(summary=42), "summary: expected"),
    (item(topic=["python"]), "item 0 (id 'py-docs'): topic: unknown field"),
]


@pytest.mark.parametrize(("raw", "expected"), BAD_ITEMS)
def test_every_bad_field_is_named(tmp_path: Path, raw: dict[str, Any], expected: str) -> None:
    error = load_error(tmp_path, [raw])
    assert len(error.problems) == 1, error.problems
    assert expected in error.problems[0], error.problems[0]


def test_an_item_that_is_not_an_object(tmp_path: Path) -> None:
    error = load_error(tmp_path, [item(), "py-docs"])
    assert error.problems == ("item 1: must be an object, got str",)


def test_duplicate_ids_name_both_items(tmp_path: Path) -> None:
    error = load_error(tmp_path, [item(), item(id="other"), item(url="https://python.org/")])
    assert error.problems == ("item 2 (id 'py-docs'): id: duplicate of item 0",)
    with pytest.raises(CatalogError, match="duplicate of item 0"):
        Catalog([parse_item(item()), parse_item(item())])


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        [
            item(url="ftp://x", topics=[]),
            item(id="ok"),
            item(id="bad-lang", language="fr"),
            *[item(id=f"n{i}", title={}) for i in range(25)],
        ],
    )
    assert len(error.problems) == 28
    assert error.problems[0].startswith("item 0 (id 'py-docs'): url:")
    assert error.problems[1].startswith("item 0 (id 'py-docs'): topics:")
    assert error.problems[2].startswith("item 2 (id 'bad-lang'): language:")
    message = str(error)
    assert message.startswith(f"{tmp_path / 'catalog.json'}: 28 problems:")
    assert "... and 8 more" in message  # long lists are cut in the message, kept in problems


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        ('{"items": [', "catalog.json", "not valid JSON: Expecting value at line 1 column 12"),
        ("items: [\n  - id: x\n", "catalog.yaml", "not valid YAML"),
        ("[]", "catalog.json", 'expected an object {"items": [...]} at the top'),
        ('{"item": []}', "catalog.json", 'expected an object {"items": [...]}'),
        ('{"items": {"id": "x"}}', "catalog.json", "items: expected a list, got dict"),
        ("", "catalog.yml", "expected an object"),  # an empty YAML file is null
        (b"\xff\xfe{}", "catalog.json", "cannot read the file"),
    ],
)
def test_file_level_errors_name_the_file(
    tmp_path: Path, content: str | bytes, name: str, expected: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        Catalog.load(path)
    assert str(caught.value).startswith(f"{path}: 1 problem:")
    assert expected in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(CatalogError, match="cannot read the file") as caught:
        Catalog.load(path)
    assert caught.value.source == str(path)


def test_unknown_topics_are_kept_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_json(
        tmp_path,
        [
            item(topics=["python", "quantum_computing"]),
            item(id="b", topics=["quantum_computing", "Python"]),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="bot.suggest.catalog"):
        catalog = Catalog.load(path)
    assert [i.id for i in catalog.with_topic("quantum_computing")] == ["py-docs", "b"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert str(path) in warnings[0]
    assert "Python (1), quantum_computing (2)" in warnings[0]


def test_an_empty_catalog_loads_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.suggest.catalog"):
        catalog = Catalog.load(write_json(tmp_path, []))
    assert len(catalog) == 0
    assert "has no items" in caplog.text


# ---- the shipped sample --------------------------------------------------------------------


def test_the_sample_catalog_loads_and_covers_every_topic(caplog: pytest.LogCaptureFixture) -> None:
    assert DEFAULT_CATALOG.name == "recommendations.sample.json"
    assert DEFAULT_CATALOG.parent.name == "data" and DEFAULT_CATALOG.is_file()
    with caplog.at_level(logging.WARNING, logger="bot.suggest.catalog"):
        catalog = Catalog.load(DEFAULT_CATALOG)
    assert caplog.records == []  # no unknown topic ids
    assert 40 <= len(catalog) <= 60
    assert catalog.topics == set(TOPIC_IDS)  # every topic the bot tracks has something
    assert len(TOPIC_IDS) == len(set(TOPIC_IDS)) == 40
    assert len(catalog.with_topic("python")) >= 4
    assert len(catalog.with_topic("performance")) >= 3
    both = [i for i in catalog.with_topic("python") if "performance" in i.topics]
    assert len(both) >= 2
    languages = Counter(i.language for i in catalog)
    assert languages["ko"] >= 10 and languages["en"] >= 10
    assert any(i.language == "ko" for i in catalog.with_topic("python"))
    assert sum(i.published is not None for i in catalog) >= 0.75 * len(catalog)
    assert all(i.published is None or i.published <= date(2026, 1, 1) for i in catalog)
    assert all(i.url.startswith("https://") for i in catalog)
    assert all(i.title.get("ko") and i.title.get("en") for i in catalog)
