"""The one place forms are registered: operators add theirs in ``build_registry``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bot.forms.builtin.intake import SubmissionStore, intake_form
from bot.forms.builtin.weather import WeatherSource, weather_form
from bot.forms.extractors import CityGazetteer
from bot.forms.spec import Form


class FormRegistry:
    """The forms the bot knows, in priority order (the first whose trigger fires wins)."""

    def __init__(self, forms: Iterable[Form] = ()) -> None:
        self._forms: dict[str, Form] = {}
        for form in forms:
            self.register(form)

    def register(self, form: Form) -> None:
        if form.name in self._forms:
            raise ValueError(f"a form named {form.name!r} is already registered")
        self._forms[form.name] = form

    def get(self, name: str) -> Form | None:
        return self._forms.get(name)

    def __iter__(self) -> Iterator[Form]:
        return iter(self._forms.values())

    def __len__(self) -> int:
        return len(self._forms)


@dataclass(frozen=True, slots=True)
class FormDeps:
    """What the built-in forms need; add your own form's dependencies here."""

    gazetteer: CityGazetteer
    weather: WeatherSource
    submissions: SubmissionStore


def build_registry(deps: FormDeps) -> FormRegistry:
    """Every form the bot runs. To add one: write ``my_form(...) -> Form`` (see
    ``builtin/intake.py``) and register it here."""
    return FormRegistry(
        [
            weather_form(deps.gazetteer, deps.weather),
            intake_form(deps.submissions),
        ]
    )
