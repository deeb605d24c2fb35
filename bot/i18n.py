"""User-facing strings in Korean and English, and which of the two a message is written in."""

from __future__ import annotations

import re

_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
_LATIN = re.compile(r"[A-Za-z]")

SUPPORTED = ("ko", "en")


_COMMAND = re.compile(r"^\s*/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?")


def detect_language(text: str, hint: str = "", default: str = "ko") -> str:
    """'ko' or 'en': the text decides when it has letters, else the platform's hint.

    A leading ``/command`` is Latin whatever the user speaks, so it is left out.
    """
    text = _COMMAND.sub("", text, count=1)
    if _HANGUL.search(text):
        return "ko"
    if _LATIN.search(text):
        return "en"
    hint = (hint or "").lower()
    if hint.startswith("ko"):
        return "ko"
    if hint.startswith("en"):
        return "en"
    return default


MESSAGES: dict[str, dict[str, str]] = {
    "empty": {
        "ko": "메시지가 비어 있어요. 궁금한 것을 글로 보내 주세요.",
        "en": "Your message is empty. Send me a question in text.",
    },
    "too_long": {
        "ko": "메시지가 너무 길어요 ({length:,}자). {limit:,}자 이하로 나눠서 보내 주세요.",
        "en": "Your message is too long ({length:,} characters). "
        "Please send at most {limit:,} characters at a time.",
    },
    "non_text": {
        "ko": "지금은 글(텍스트) 메시지만 이해할 수 있어요.",
        "en": "I can only read text messages for now.",
    },
    "fallback_timeout": {
        "ko": "지금 AI 모델의 응답이 늦어지고 있어요. 잠시 후 다시 물어봐 주세요.",
        "en": "The AI model is slow to answer right now. Please ask again in a moment.",
    },
    "fallback_unavailable": {
        "ko": "지금 AI 모델을 사용할 수 없어요. 잠시 후 다시 시도해 주세요.",
        "en": "The AI model is unavailable right now. Please try again in a moment.",
    },
    "fallback_busy": {
        "ko": "요청이 많아 AI 모델이 바빠요. 잠시 후 다시 시도해 주세요.",
        "en": "The AI model is busy with many requests. Please try again shortly.",
    },
    "fallback_unsafe": {
        "ko": "이 메시지에는 답할 수 없어요. 다르게 표현해 주시겠어요?",
        "en": "I can't answer that message. Could you phrase it differently?",
    },
    "fallback_too_long": {
        "ko": "대화가 너무 길어져 답할 수 없어요. /reset 으로 새 대화를 시작해 주세요.",
        "en": "This conversation got too long to answer. Start over with /reset.",
    },
    "notice_stalled": {
        "ko": "(응답이 중간에 멈춰 여기까지만 보여 드려요.)",
        "en": "(The answer stopped coming, so this is all I have.)",
    },
    "notice_interrupted": {
        "ko": "(연결이 끊겨 답변이 여기서 끝났어요. 다시 물어봐 주세요.)",
        "en": "(The connection broke, so the answer ends here. Please ask again.)",
    },
    "notice_truncated": {
        "ko": '(답변이 길어 여기서 잘렸어요. "계속"이라고 보내 주시면 이어서 답할게요.)',
        "en": '(The answer was cut here for length. Send "continue" for the rest.)',
    },
    "retracted": {
        "ko": "(이 답변은 안전 정책에 따라 삭제되었어요.)",
        "en": "(This answer was withdrawn under the safety policy.)",
    },
    "input_blocked": {
        "ko": "부적절한 표현이 있어 이 메시지에는 답하지 않을게요.",
        "en": "Your message contains language I won't respond to.",
    },
    "store_down": {
        "ko": "지금 대화 기록 저장소에 연결할 수 없어요. 잠시 후 다시 시도해 주세요.",
        "en": "I can't reach my conversation storage right now. Please try again shortly.",
    },
    "busy_session": {
        "ko": "이전 메시지에 아직 답하는 중이에요. 잠시 후 다시 보내 주세요.",
        "en": "I'm still answering your previous message. Please send this again shortly.",
    },
    "offline_banner": {
        "ko": "오프라인 모드: GLM_API_KEY가 없어 내장 오프라인 모델이 답합니다.",
        "en": "Offline mode: no GLM_API_KEY is set, so the built-in offline model answers.",
    },
    "help": {
        "ko": "안녕하세요! GLM-4.5로 답하는 챗봇이에요. 무엇이든 물어보세요.\n"
        '예: "서울 날씨 알려줘" → "부산은?", "상담 예약하고 싶어요"\n'
        "/cancel — 진행 중인 질문(예약 등) 취소\n"
        "/reset — 이 대화를 새로 시작\n/forget — 저장된 내 대화 기록 삭제\n/help — 도움말",
        "en": "Hi! I'm a chatbot answering with GLM-4.5. Ask me anything.\n"
        'Try: "What\'s the weather in Seoul?" then "What about Busan?", '
        'or "I\'d like to book a consultation"\n'
        "/cancel — stop a form in progress (e.g. a booking)\n"
        "/reset — start this conversation over\n/forget — delete what I stored about you\n"
        "/help — this help",
    },
    "reset_done": {
        "ko": "대화를 초기화했어요. 새로 시작해요!",
        "en": "Conversation reset. Let's start fresh!",
    },
    "reset_other_done": {
        "ko": "{target} 의 대화를 초기화했어요.",
        "en": "Reset the conversation of {target}.",
    },
    "reset_denied": {
        "ko": "다른 사람이나 그룹 전체의 대화는 관리자만 초기화할 수 있어요. "
        "본인의 대화는 /reset 으로 초기화할 수 있어요.",
        "en": "Only admins can reset someone else's or the whole chat's conversation. "
        "You can reset your own with /reset.",
    },
    "forget_done": {
        "ko": "저장된 대화 기록을 모두 삭제했어요.",
        "en": "I deleted everything I had stored about this conversation.",
    },
    "unknown_command": {
        "ko": "알 수 없는 명령이에요: {command}. /help 로 사용법을 확인하세요.",
        "en": "Unknown command: {command}. See /help.",
    },
}


def t(key: str, lang: str, **values: object) -> str:
    """The message ``key`` in ``lang`` ('ko' or 'en'), formatted with ``values``."""
    table = MESSAGES[key]
    text = table.get(lang) or table["en"]
    return text.format(**values) if values else text
