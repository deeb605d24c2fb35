"""Builds the suggestions pipeline for the composition root (one call)."""

from __future__ import annotations

import logging

from bot.forms.korean import KoreanAnalyzer
from bot.sessions.base import SessionStore
from bot.settings import Settings
from bot.suggest.catalog import Catalog, CatalogError
from bot.suggest.engine import build_recommender
from bot.suggest.profile import build_profile_store
from bot.suggest.service import SuggestConfig, Suggestions
from bot.suggest.topics import TopicGazetteer

log = logging.getLogger(__name__)


def build_suggestions(
    settings: Settings,
    store: SessionStore,
    *,
    analyzer: KoreanAnalyzer | None,
    pepper: bytes = b"",
) -> Suggestions:
    """Topics, profiles (in Redis when sessions are), the catalog at RECOMMENDATIONS_PATH
    (a ``CatalogError`` naming the file and the item when it is wrong) and the recommender
    (RECOMMENDER_URL first when set, the catalog as its fallback)."""
    try:
        catalog = Catalog.load(settings.recommendations_path)
    except (CatalogError, OSError) as exc:
        # A wrong catalog is the operator's to fix: said plainly (as `python -m bot check`
        # does), not as a traceback.
        log.error("RECOMMENDATIONS_PATH: %s", exc)
        raise SystemExit(2) from None
    return Suggestions(
        TopicGazetteer.load(),
        build_profile_store(store),
        build_recommender(catalog, settings.recommender_url),
        analyzer=analyzer,
        config=SuggestConfig(
            half_life_days=settings.interest_half_life_days,
            ttl_seconds=settings.session_ttl_seconds,
        ),
        pepper=pepper,
    )
