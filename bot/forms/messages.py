"""What the forms machinery itself says, in Korean and English (forms bring their own questions)."""

from __future__ import annotations

from bot.forms.extractors import josa
from bot.forms.spec import pick

MESSAGES: dict[str, dict[str, str]] = {
    "cancelled": {
        "ko": "{title_obj} 취소했어요. 필요하면 언제든 다시 말씀해 주세요.",
        "en": "I cancelled the {title}. Just ask again whenever you like.",
    },
    "nothing_to_cancel": {
        "ko": "지금 진행 중인 질문이 없어요.",
        "en": "There is nothing in progress to cancel.",
    },
    "expired": {
        "ko": "({title} 질문은 {minutes}분 동안 답이 없어 닫았어요. "
        "다시 시작하려면 말씀해 주세요.)",
        "en": "(I closed the {title} questions after {minutes} minutes without an answer. "
        "Ask again to start over.)",
    },
    "gave_up": {
        "ko": "답을 여러 번 이해하지 못해 {title_obj} 멈췄어요. "
        "필요하면 처음부터 다시 말씀해 주세요.",
        "en": "I couldn't understand the answer several times, so I stopped the {title}. "
        "Ask again to start over.",
    },
    "choose": {
        "ko": "어떤 항목을 바꿀까요? ({labels}) 그만하려면 '취소'라고 보내 주세요.",
        "en": "Which one should I change? ({labels}) Send 'cancel' to stop.",
    },
    "cancel_hint": {
        "ko": "(그만하려면 언제든 '취소'라고 보내 주세요.)",
        "en": "(Send 'cancel' at any time to stop.)",
    },
    "busy": {
        "ko": "지금은 {title} 중이에요. 먼저 마치거나 '취소'라고 보내 주세요.",
        "en": "We're in the middle of the {title}. Finish it first or send 'cancel'.",
    },
    "changed": {
        "ko": "{label_obj} {value_to} 바꿨어요.",
        "en": "Changed the {label} to {value}.",
    },
    "handler_failed": {
        "ko": "{title} 처리 중에 문제가 생겼어요. 잠시 후 다시 시도해 주세요.",
        "en": "Something went wrong with the {title}. Please try again in a moment.",
    },
}


def say(key: str, lang: str, **values: object) -> str:
    """``key`` in ``lang``; a ``title`` value also fills ``title_obj`` (title + 을/를), a
    ``label`` and a ``value`` fill ``label_obj`` and ``value_to`` (value + (으)로)."""
    title = values.get("title")
    if isinstance(title, str):
        values.setdefault("title_obj", josa(title, "을", "를"))
    label, value = values.get("label"), values.get("value")
    if isinstance(label, str) and isinstance(value, str):
        values.setdefault("label_obj", josa(label, "을", "를"))
        values.setdefault("value_to", josa(value, "으로", "로"))
    return pick(MESSAGES[key], lang, **values)
