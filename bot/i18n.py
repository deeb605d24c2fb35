"""User-facing strings in Korean and English, and which language a message is written in.

The bot's own strings exist in Korean and English (others read English); the language a
message is written in is recognised by its script for many more, so the model is told to
answer in the user's language whatever it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
# Latin letters, including accented ones (Latin-1, Extended-A/B, Vietnamese).
_ACCENTED_LATIN = "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
_LATIN_WORD = re.compile(f"[A-Za-z{_ACCENTED_LATIN}]+")
_NON_ASCII_LATIN = re.compile(f"[{_ACCENTED_LATIN}]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
# Scripts written with spaces between words count words; the others count characters at half
# weight (about two characters a word), so they can be weighed against Latin words.
_WORD_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile(f"[{chars}]+"))
    for code, chars in (
        ("ru", "\u0400-\u052f"),  # Cyrillic; refined below
        ("el", "\u0370-\u03ff\u1f00-\u1fff"),
        ("hy", "\u0531-\u058f"),
        ("he", "\u0591-\u05ff"),
        ("ar", "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufefc"),
        ("hi", "\u0900-\u097f"),  # Devanagari
        ("bn", "\u0980-\u09ff"),
        ("pa", "\u0a00-\u0a7f"),  # Gurmukhi
        ("gu", "\u0a80-\u0aff"),
        ("or", "\u0b00-\u0b7f"),
        ("ta", "\u0b80-\u0bff"),
        ("te", "\u0c00-\u0c7f"),
        ("kn", "\u0c80-\u0cff"),
        ("ml", "\u0d00-\u0d7f"),
        ("si", "\u0d80-\u0dff"),
        ("ka", "\u10a0-\u10ff"),  # Georgian
        ("am", "\u1200-\u137f"),  # Ethiopic
        ("mn", "\u1800-\u18af"),  # Mongolian
    )
)
_CHAR_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile(f"[{chars}]"))
    for code, chars in (
        ("th", "\u0e00-\u0e7f"),
        ("lo", "\u0e80-\u0eff"),
        ("bo", "\u0f00-\u0fff"),  # Tibetan
        ("my", "\u1000-\u109f"),  # Myanmar
        ("km", "\u1780-\u17ff"),  # Khmer
    )
)
_ANY_OTHER_SCRIPT = re.compile(
    r"[\u0370-\u052f\u0531-\u18af\u1f00-\u1fff\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\uf900-\ufaff\ufb1d-\ufdff\ufe70-\ufefc\uff66-\uff9f\U00020000-\U0002ffff]"
)
# Letters only some languages of a shared script use (checked in this order).
_CYRILLIC_VARIANTS = (
    ("uk", re.compile(r"[їєґЇЄҐ]")),
    ("be", re.compile(r"[ўЎ]")),
    ("kk", re.compile(r"[әғқңөұүһӘҒҚҢӨҰҮҺ]")),
    ("mk", re.compile(r"[ѓќѕЃЌЅ]")),
    ("sr", re.compile(r"[ђћјљњџЂЋЈЉЊЏ]")),
)
_ARABIC_VARIANTS = (
    ("ur", re.compile(r"[\u0679\u0688\u0691\u06ba\u06be\u06c1\u06d2\u06d3]")),
    ("fa", re.compile(r"[\u067e\u0686\u0698\u06af\u06a9\u06cc]")),
)
_VARIANTS = {"ru": _CYRILLIC_VARIANTS, "ar": _ARABIC_VARIANTS}
# Enough text to tell the language; a 50,000-character message is not scanned whole.
_SAMPLE_CHARS = 2000

_HINT = re.compile(r"[a-z]{2,3}")

SUPPORTED = ("ko", "en")  # the languages of the bot's own strings (MESSAGES)

LANGUAGE_NAMES = {
    "ko": "Korean",
    "en": "English",
    "ja": "Japanese",
    "zh": "Chinese",
    "ru": "Russian",
    "uk": "Ukrainian",
    "be": "Belarusian",
    "kk": "Kazakh",
    "mk": "Macedonian",
    "sr": "Serbian",
    "el": "Greek",
    "hy": "Armenian",
    "he": "Hebrew",
    "ar": "Arabic",
    "fa": "Persian",
    "ur": "Urdu",
    "hi": "Hindi",
    "bn": "Bengali",
    "pa": "Punjabi",
    "gu": "Gujarati",
    "or": "Odia",
    "ta": "Tamil",
    "te": "Telugu",
    "kn": "Kannada",
    "ml": "Malayalam",
    "si": "Sinhala",
    "ka": "Georgian",
    "am": "Amharic",
    "mn": "Mongolian",
    "th": "Thai",
    "lo": "Lao",
    "bo": "Tibetan",
    "my": "Burmese",
    "km": "Khmer",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "pt": "Portuguese",
    "it": "Italian",
    "vi": "Vietnamese",
    "id": "Indonesian",
    "tr": "Turkish",
}


_COMMAND = re.compile(r"^\s*/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?")


def detect_language(text: str, hint: str = "", default: str = "ko") -> str:
    """A language code for ``text``: the text decides when it has letters, else the hint.

    Hangul makes it 'ko' (Korean text wins, whatever else it holds). Otherwise the script
    with the most words decides: kana 'ja', Han without kana 'zh', Cyrillic 'ru' (or 'uk',
    'be', 'kk', 'mk', 'sr' by their own letters), Arabic script 'ar' ('fa', 'ur'), Greek,
    Hebrew, Thai, the Indic scripts and more; Latin letters 'en' (a Latin script does not
    tell French from English: callers that name the language use ``language_name``).
    Without letters, the platform's hint (any language tag, e.g. 'pt-BR' → 'pt'), else
    ``default``. A leading ``/command`` is Latin whatever the user speaks, so it is left out.
    """
    text = _COMMAND.sub("", text, count=1)
    if _HANGUL.search(text):
        return "ko"
    sample = text[:_SAMPLE_CHARS]
    if _ANY_OTHER_SCRIPT.search(sample):
        found = _other_script(sample)
        if found is not None:
            return found
    elif _LATIN_WORD.search(sample):
        return "en"
    tag = (hint or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return tag if _HINT.fullmatch(tag) else default


def _other_script(text: str) -> str | None:
    """The language of the script that outweighs the others (and Latin), if any."""
    weights: dict[str, float] = {}
    kana = len(_KANA.findall(text))
    han = len(_HAN.findall(text))
    if kana:
        weights["ja"] = (kana + han) / 2
    elif han:
        weights["zh"] = han / 2
    for code, words in _WORD_SCRIPTS:
        count = len(words.findall(text))
        if count:
            weights[code] = count
    for code, chars in _CHAR_SCRIPTS:
        count = len(chars.findall(text))
        if count:
            weights[code] = count / 2
    latin = len(_LATIN_WORD.findall(text))
    if not weights:
        return "en" if latin else None
    code = max(weights, key=weights.__getitem__)
    if latin > weights[code]:
        return "en"
    for variant, letters in _VARIANTS.get(code, ()):
        if letters.search(text):
            return variant
    return code


def language_name(lang: str, text: str = "") -> str | None:
    """The English name of ``lang`` for the model's instructions; ``None`` when unsure.

    'en' stands for any Latin-script text: it is named English only when ``text`` has no
    accented Latin letters ("Où est la gare ?" may well be French).
    """
    if lang == "en" and _NON_ASCII_LATIN.search(_COMMAND.sub("", text, count=1)):
        return None
    return LANGUAGE_NAMES.get(lang)


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
    "button_not_yours": {
        "ko": "이 버튼은 다른 분께 드린 제안이에요.",
        "en": "This button was offered to someone else.",
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
        "/reset — 이 대화를 새로 시작\n/memory — 이 대화에서 기억하는 것 보기\n"
        "/forget — 저장된 내 대화 기록 삭제\n/usage — 내 토큰 사용량\n/help — 도움말",
        "en": "Hi! I'm a chatbot answering with GLM-4.5. Ask me anything.\n"
        'Try: "What\'s the weather in Seoul?" then "What about Busan?", '
        'or "I\'d like to book a consultation"\n'
        "/cancel — stop a form in progress (e.g. a booking)\n"
        "/reset — start this conversation over\n/memory — what I remember of it\n"
        "/forget — delete what I stored about you\n/usage — your token usage\n"
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
    "queue_full": {
        "ko": "메시지가 너무 많이 밀려 있어요. 앞의 메시지에 답하는 동안 보내신 메시지는 "
        "처리하지 않았어요. 답을 받은 뒤 다시 보내 주세요.",
        "en": "Too many of your messages are waiting. The ones you sent while I was "
        "answering were not processed; please send them again after my answers.",
    },
    "web_busy": {
        "ko": "지금 이 API 키로 진행 중인 답변이 너무 많아요. 잠시 후 다시 보내 주세요.",
        "en": "Too many answers are in progress for this API key. Please try again shortly.",
    },
    "rate_limited": {
        "ko": "메시지를 너무 빨리 보내고 있어요. {seconds}초 뒤에 다시 보내 주세요.",
        "en": "You're sending messages too quickly. Please try again in {seconds} s.",
    },
    "fallback_empty": {
        "ko": "AI 모델이 빈 답을 보냈어요. 다시 물어봐 주세요.",
        "en": "The AI model sent back an empty answer. Please ask again.",
    },
    # Token budgets (bot/usage.py); {reset}: how long until it resets, {at}: when (UTC).
    "budget_user_day": {
        "ko": "오늘 쓸 수 있는 AI 토큰을 모두 썼어요. {reset} 뒤({at})에 다시 답할 수 있어요. "
        "/usage 로 사용량을 볼 수 있고, AI가 필요 없는 명령과 예약은 계속 쓸 수 있어요.",
        "en": "You've used today's AI token budget. I can answer again in {reset} ({at}). "
        "See /usage for your figures; commands and bookings that need no AI still work.",
    },
    "budget_user_month": {
        "ko": "이번 달에 쓸 수 있는 AI 토큰을 모두 썼어요. {reset} 뒤({at})에 다시 답할 수 "
        "있어요. /usage 로 사용량을 볼 수 있고, AI가 필요 없는 명령과 예약은 계속 쓸 수 있어요.",
        "en": "You've used this month's AI token budget. I can answer again in {reset} ({at}). "
        "See /usage for your figures; commands and bookings that need no AI still work.",
    },
    "budget_group_day": {
        "ko": "이 대화방이 오늘 쓸 수 있는 AI 토큰을 모두 썼어요. {reset} 뒤({at})에 다시 답할 "
        "수 있어요. AI가 필요 없는 명령과 예약은 계속 쓸 수 있어요.",
        "en": "This group has used today's AI token budget. I can answer again in {reset} "
        "({at}). Commands and bookings that need no AI still work.",
    },
    "duration_hm": {"ko": "{hours}시간 {minutes}분", "en": "{hours} h {minutes} min"},
    "duration_m": {"ko": "{minutes}분", "en": "{minutes} min"},
    "duration_dh": {"ko": "{days}일 {hours}시간", "en": "{days} d {hours} h"},
    "usage_user": {
        "ko": "토큰 사용량 (UTC 기준)\n· 오늘: {day}\n· 이번 달: {month}\n· 남은 예산: {left}",
        "en": "Your token usage (UTC)\n· Today: {day}\n· This month: {month}\n"
        "· Budget left: {left}",
    },
    "usage_tokens": {
        "ko": "{total} (입력 {input} · 출력 {output}, 그중 생각 {thinking})",
        "en": "{total} (input {input} · output {output}, of which thinking {thinking})",
    },
    "usage_unlimited": {"ko": "제한 없음", "en": "unlimited"},
    "usage_left_day": {"ko": "오늘 {n}", "en": "{n} today"},
    "usage_left_month": {"ko": "이번 달 {n}", "en": "{n} this month"},
    "usage_left_group": {"ko": "이 대화방 오늘 {n}", "en": "{n} today for this group"},
    "usage_admin_exempt": {
        "ko": "관리자라 예산 제한이 없어요",
        "en": "none applies: you're an admin",
    },
    "usage_tenant": {
        "ko": "\n\n봇 전체 ({tenant})\n· 오늘: {day}\n· 이번 달: {month}",
        "en": "\n\nThe whole bot ({tenant})\n· Today: {day}\n· This month: {month}",
    },
    "usage_top": {"ko": "\n이번 달 가장 많이 쓴 사용자:", "en": "\nTop users this month:"},
    "usage_top_none": {"ko": "\n이번 달 사용 기록이 없어요.", "en": "\nNo usage this month."},
    "usage_models": {"ko": "\n모델별 (이번 달):", "en": "\nBy model (this month):"},
    "usage_admin_private": {
        "ko": "\n\n(봇 전체 사용량은 관리자에게 개인 대화에서만 보여요.)",
        "en": "\n\n(The bot's totals are shown to admins in a private chat only.)",
    },
    "notice_shutdown": {
        "ko": "봇이 다시 시작되느라 이 답변이 중단됐어요. 잠시 후 다시 보내 주세요.",
        "en": "The bot restarted and this answer was cut off. Please send your message again.",
    },
    # With Redis the turn is journaled: the next process answers it in full.
    "notice_shutdown_resumed": {
        "ko": "봇이 다시 시작되느라 이 답변이 중단됐어요. 잠시 후 이어서 처음부터 답해 드릴게요.",
        "en": "The bot restarted and this answer was cut off. It will be answered again in full"
        " in a moment.",
    },
    "notice_resumed": {
        "ko": "(봇이 다시 시작되어 이 메시지에 처음부터 다시 답합니다.)",
        "en": "(The bot restarted; here is the whole answer to this message.)",
    },
}


def localized(table: Mapping[str, str], lang: str, **values: object) -> str:
    """``table``'s text in ``lang`` (English for languages other than Korean and English),
    formatted with ``values``."""
    text = table.get(lang) or table["en"]
    return text.format(**values) if values else text


def t(key: str, lang: str, **values: object) -> str:
    """The message ``key`` in ``lang``, formatted with ``values`` (see ``localized``)."""
    return localized(MESSAGES[key], lang, **values)
