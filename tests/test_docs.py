"""The documentation points only at files (and README sections) that exist."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SKIP_DIRS = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".hypothesis", "node_modules"}
_CODE_DIRS = ("bot", "adapters", "bench", "scripts", "tests")

# "ARCHITECTURE.md", "bot/forms/README.md#adding-a-form", "README.md#architecture"
_MD_REFERENCE = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)?[\w./-]*\w\.md)(#[\w-]+)?\b")
# A markdown link: [text](target)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
# A relative path with a slash ("scripts/run.sh", "bot/data/", ".ci/run"); checked only when
# its first part is in the project, so "Asia/Seoul" or "and/or" are left alone.
_PATH = re.compile(r"(?<![\w/.:@-])(\.?[\w-]+/[\w./-]*)")


def _files(suffix: str, dirs: tuple[str, ...] = ()) -> list[Path]:
    found = []
    for root in [ROOT / d for d in dirs] if dirs else [ROOT]:
        for folder, subdirs, names in os.walk(root):
            subdirs[:] = [d for d in subdirs if d not in _SKIP_DIRS and not d.endswith("-info")]
            found += [Path(folder, name) for name in names if name.endswith(suffix)]
    return sorted(found)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    return {
        _slug(m.group(1))
        for m in re.finditer(r"^#{1,6}\s+(.+)$", markdown.read_text(), flags=re.MULTILINE)
    }


def _resolve(target: str, base: Path) -> Path | None:
    for folder in (base, ROOT):
        candidate = (folder / target).resolve()
        if candidate.exists():
            return candidate
    return None


def _problems_of_reference(target: str, anchor: str, base: Path) -> list[str]:
    found = _resolve(target, base)
    if found is None:
        return [f"{target}: no such file"]
    if anchor and found.suffix == ".md" and anchor.lstrip("#") not in _anchors(found):
        return [f"{target}{anchor}: no such section"]
    return []


def test_markdown_files_named_in_code_exist() -> None:
    problems: dict[str, list[str]] = {}
    for path in _files(".py", _CODE_DIRS) + _files(".sh", ("scripts",)):
        if path == Path(__file__).resolve():
            continue  # this file's own examples
        for match in _MD_REFERENCE.finditer(path.read_text()):
            found = _problems_of_reference(match.group(1), match.group(2) or "", path.parent)
            if found:
                problems.setdefault(str(path.relative_to(ROOT)), []).extend(found)
    assert problems == {}


def test_links_and_paths_in_markdown_exist() -> None:
    problems: dict[str, list[str]] = {}
    for path in _files(".md"):
        found = _markdown_problems(path)
        if found:
            problems[str(path.relative_to(ROOT))] = found
    assert problems == {}


def _markdown_problems(path: Path) -> list[str]:
    text = path.read_text()
    problems = []
    for match in _LINK.finditer(text):
        target = match.group(1)
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        if not file:
            if anchor not in _anchors(path):
                problems.append(f"#{anchor}: no such section")
            continue
        problems += _problems_of_reference(file, f"#{anchor}" if anchor else "", path.parent)
    for match in _MD_REFERENCE.finditer(text):
        problems += _problems_of_reference(match.group(1), match.group(2) or "", path.parent)
    for match in _PATH.finditer(text):
        target = match.group(1).rstrip(".")
        first = target.split("/", 1)[0]
        if (path.parent / first).exists() or (ROOT / first).exists():
            problems += _problems_of_reference(target, "", path.parent)
    return problems


def test_the_checks_catch_a_missing_file() -> None:
    assert _problems_of_reference("ARCHITECTURE_NOT_HERE.md", "", ROOT) != []
    assert _problems_of_reference("README.md", "#no-such-section", ROOT) != []
    assert _problems_of_reference("README.md", "#architecture", ROOT) == []
