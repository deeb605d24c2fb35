"""Built-in intake form, the example to copy: book a consultation step by step, confirm, store.

It collects a name, a Korean phone number, a preferred date and time (in the future, within
opening hours) and a topic; shows a summary and asks for a yes; stores the booking as a record
of the caller's tenant (until the appointment plus a grace period), tells the bot's admins, and
lets them list recent ones with ``/submissions``, privately.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bot.forms.extractors import (
    Found,
    Utterance,
    clean_person_name,
    extract_date,
    extract_person_name,
    extract_phone,
    extract_time,
    find_date,
    find_phone,
    find_time,
    format_korean_phone,
    has_cue,
    josa,
)
from bot.forms.spec import (
    Filled,
    Form,
    HandlerResult,
    InvalidValue,
    Slot,
    SlotContext,
    Triggers,
    pick,
)
from bot.forms.understanding import DAY_REFERENCES, TIME_REFERENCES
from bot.notify import AdminNotices
from bot.reply import literal
from bot.sessions.base import SessionStore, SessionStoreError
from bot.sessions.index import RecordRef, StoredIndex, tenant_of
from bot.turn import Turn

if TYPE_CHECKING:
    from bot.commands import Caller

log = logging.getLogger(__name__)

FORM_NAME = "intake"
GRACE_DAYS = 30  # a booking is kept this long after its appointment, then expires
_KO_WEEKDAYS = "월화수목금토일"

TEXT: dict[str, dict[str, str]] = {
    "title": {"ko": "상담 예약", "en": "consultation booking"},
    "name_label": {"ko": "이름", "en": "name"},
    "name_question": {
        "ko": "상담 예약을 도와드릴게요. 성함이 어떻게 되세요?",
        "en": "Let's book your consultation. What is your name?",
    },
    "name_invalid": {
        "ko": "이름은 2~40자의 글자로 알려 주세요.",
        "en": "Please give a name of 2 to 40 letters.",
    },
    "phone_label": {"ko": "전화번호", "en": "phone number"},
    "phone_question": {
        "ko": "연락받으실 전화번호를 알려 주세요. (예: 010-1234-5678)",
        "en": "Which phone number can we call you on? (e.g. 010-1234-5678)",
    },
    "phone_invalid": {
        "ko": "{value_topic} 올바른 전화번호가 아니에요. 010-1234-5678 같은 한국 전화번호로 "
        "알려 주세요.",
        "en": "'{value}' is not a valid phone number. Please give a Korean number like "
        "010-1234-5678.",
    },
    "date_label": {"ko": "희망 날짜", "en": "date"},
    "date_question": {
        "ko": "상담 받고 싶은 날짜를 알려 주세요. (예: 내일, 다음 주 화요일, 6월 20일)",
        "en": "Which day would suit you? (e.g. tomorrow, next Tuesday, June 20)",
    },
    "date_past": {
        "ko": "이미 지난 날짜예요. 오늘 이후 날짜로 알려 주세요.",
        "en": "That day has passed. Please pick today or a later day.",
    },
    "date_far": {
        "ko": "예약은 {days}일 뒤까지만 받을 수 있어요.",
        "en": "Bookings can only be made up to {days} days ahead.",
    },
    "time_label": {"ko": "희망 시간", "en": "time"},
    "time_question": {
        "ko": "몇 시가 좋으세요? (상담 시간 {open}시~{close}시)",
        "en": "What time would suit you? (consultations from {open}:00 to {close}:00)",
    },
    "time_closed": {
        "ko": "상담은 {open}시부터 {close}시 사이에만 가능해요.",
        "en": "Consultations are only available between {open}:00 and {close}:00.",
    },
    "time_past": {
        "ko": "이미 지난 시간이에요. 지금 이후 시간으로 알려 주세요.",
        "en": "That time has passed. Please pick a later time.",
    },
    "topic_label": {"ko": "상담 주제", "en": "topic"},
    "topic_question": {
        "ko": "어떤 내용으로 상담 받고 싶으세요?",
        "en": "What would you like to talk about?",
    },
    "topic_invalid": {
        "ko": "상담 주제를 2~200자로 알려 주세요.",
        "en": "Please describe the topic in 2 to 200 characters.",
    },
    "confirm": {"ko": "이대로 예약할까요? (네/아니요)", "en": "Shall I book it? (yes/no)"},
    "booked": {
        "ko": "상담 예약을 접수했어요. (접수번호 {ref})\n{when}에 {phone_to} 연락드릴게요.",
        "en": "Your consultation is booked (reference {ref}).\nWe'll call you on {phone} {when}.",
    },
    "store_failed": {
        "ko": "예약을 저장하지 못했어요. 잠시 후 '네'라고 다시 보내 주시면 다시 시도할게요.",
        "en": "I couldn't save the booking. Send 'yes' again in a moment and I'll retry.",
    },
    "admin_denied": {
        "ko": "이 명령은 이 봇의 관리자만 쓸 수 있어요.",
        "en": "Only this bot's admins can use this command.",
    },
    "admin_private": {
        "ko": "예약 목록에는 개인정보가 있어서 저와의 개인 대화(1:1)에서만 보여 드려요.",
        "en": "Bookings hold personal data, so I list them only in a private chat with me.",
    },
    "admin_usage": {
        "ko": "사용법: /submissions [N] — 최근 예약 N건 (1~50, 기본 10)",
        "en": "Usage: /submissions [N] — the N latest bookings (1-50, default 10)",
    },
    "admin_new": {"ko": "새 상담 예약:", "en": "New consultation booking:"},
    "admin_empty": {
        "ko": "아직 접수된 상담 예약이 없어요.",
        "en": "There are no consultation bookings yet.",
    },
    "admin_head": {"ko": "최근 상담 예약 {count}건:", "en": "Latest {count} bookings:"},
    "admin_down": {
        "ko": "지금 예약 저장소에 연결할 수 없어요. 잠시 후 다시 시도해 주세요.",
        "en": "I can't reach the booking storage right now. Please try again shortly.",
    },
}


# ---- storage ----------------------------------------------------------------------------------


class SubmissionStore(Protocol):
    """Where completed intake forms go."""

    async def add(self, form: str, record: Mapping[str, Any], turn: Turn, ttl: int) -> None: ...

    async def recent(self, form: str, tenant: str, limit: int) -> list[dict[str, Any]]: ...


class RecordSubmissionStore:
    """Bookings as records of the store (``put_record``): per tenant, kept for ``ttl`` seconds
    (never evicted like a chat session), listed newest first without scanning keys, and
    entered in the user's index so that ``/forget`` deletes them. The bot's admins on the
    booking's platform are told of each new one (``AdminNotices``)."""

    def __init__(
        self,
        store: SessionStore,
        *,
        index: StoredIndex | None = None,
        notices: AdminNotices | None = None,
    ) -> None:
        self.store = store
        self.index = index or StoredIndex(store, session_ttl_seconds=30 * 86_400)
        self.notices = notices

    async def add(self, form: str, record: Mapping[str, Any], turn: Turn, ttl: int) -> None:
        ref = RecordRef(form, tenant_of(turn), str(record["id"]))
        # Indexed first: a record that exists is always one that /forget can find.
        await self.index.note_record(turn, ref, ttl)
        await self.store.put_record(ref.kind, ref.tenant, ref.record_id, dict(record), ttl)
        if self.notices is not None:
            lang = str(record.get("lang") or "ko")
            text = f"{pick(TEXT['admin_new'], lang)}\n{describe(record, lang)}"
            self.notices.send(turn.platform, turn.team_id, text)

    async def recent(self, form: str, tenant: str, limit: int) -> list[dict[str, Any]]:
        return await self.store.recent_records(form, tenant, limit)


def describe(record: Mapping[str, Any], lang: str) -> str:
    """One booking on one line; every user-written field is shown as plain text."""
    when = f"{_display_date(record['date'], lang)} {_display_time(record['time'], lang)}"
    who = f"{record.get('platform', '?')}:{record.get('user_id', '?')}"
    return (
        f"[{literal(record.get('ref', '?'))}] {when} · {literal(record.get('name', ''))} · "
        f"{literal(record.get('phone', ''))} · {literal(record.get('topic', ''))} ({literal(who)})"
    )


# ---- slots ------------------------------------------------------------------------------------

_KO_TOPIC = re.compile(
    r"(?P<topic>[가-힣A-Za-z][가-힣A-Za-z0-9 ]{1,40}?)\s*"
    r"(?:관련(?:해서|된)?|에\s*대한|에\s*대해(?:서)?|에\s*관한|문제로|건으로|때문에)\s*상담"
)
_KO_TOPIC_WORD = re.compile(
    r"(?<![가-힣])(?P<topic>[가-힣A-Za-z]{2,20})\s*상담\s*(?:을|이)?\s*(?:예약|신청|받)"
)
_EN_TOPIC = re.compile(
    r"\b(?:consultation|appointment|meeting|session|talk|discuss)\s+"
    r"(?:about|on|regarding|for)\s+(?P<topic>[^.?!]{2,80})",
    re.IGNORECASE,
)
_NOT_TOPICS = frozenset(
    {
        "예약",
        "상담",
        "신청",
        "오늘",
        "내일",
        "모레",
        "오후",
        "오전",
        "관련",
        "대한",
        "관한",
        "저",
        "제",
    }
)


def extract_topic(utt: Utterance) -> Found | None:
    """ "대출 상담 예약하고 싶어요" → "대출"; "a consultation about my mortgage" → "my mortgage"."""
    for pattern in (_KO_TOPIC, _KO_TOPIC_WORD):
        m = pattern.search(utt.text)
        if m:
            found = _last_words(utt, m.start("topic"), m.end("topic"))
            if found is not None:
                return found
    m = _EN_TOPIC.search(utt.text)
    if m:
        topic = m.group("topic")
        # Cut a trailing date or time off ("about my mortgage tomorrow at 3pm").
        for hit in (find_date(topic, utt.today), find_time(topic)):
            if hit is not None:
                topic = topic[: hit.start]
        topic = topic.strip(" ,")
        if len(topic) >= 2:
            return Found(topic, m.start("topic"), m.start("topic") + len(topic))
    return None


def _last_words(utt: Utterance, start: int, end: int) -> Found | None:
    # The topic is the few words right before "관련 상담": "내일 오후 3시에 세금" → "세금".
    words = list(re.finditer(r"\S+", utt.text[start:end]))
    kept: list[re.Match[str]] = []
    for word in reversed(words[-4:]):
        w = word.group()
        if (
            any(ch.isdigit() for ch in w)
            or w.endswith(("에", "에서", "은", "는", "이", "가", "을", "를"))
            or w in _NOT_TOPICS
            or find_date(w, utt.today) is not None
            or find_time(w) is not None
        ):
            break
        kept.append(word)
    if not kept:
        return None
    first, last = kept[-1], kept[0]
    topic = utt.text[start + first.start() : start + last.end()]
    return Found(topic, start + first.start(), start + last.end()) if len(topic) >= 2 else None


def _parse_topic(text: str, utt: Utterance) -> str | None:
    text = text.strip()
    # A question is an interruption, not a topic ("상담은 얼마나 걸려요?").
    if not text or "?" in text or (has_cue(text) and len(text) < 12):
        return None
    return re.sub(r"(?:에\s*대해서?요?|관련해서요?|이요|요)$", "", text).strip() or None


def _validate_name(value: Any, ctx: SlotContext) -> str:
    name = " ".join(str(value).split())
    if not 2 <= len(name) <= 40 or any(ch.isdigit() for ch in name):
        raise InvalidValue(TEXT["name_invalid"])
    return name


def _validate_phone(value: Any, ctx: SlotContext) -> str:
    formatted = format_korean_phone(str(value))
    if formatted is None:
        raw = str(value)
        topic = f"'{raw}'" + josa(raw, "은", "는")[len(raw) :]
        raise InvalidValue(TEXT["phone_invalid"], value=raw, value_topic=topic)
    return formatted


def _parse_phone(text: str, utt: Utterance) -> str | None:
    found = find_phone(text)
    return str(found.value) if found is not None else None


def _display_date(value: Any, lang: str) -> str:
    day = date.fromisoformat(str(value))
    if lang == "ko":
        return f"{day.month}월 {day.day}일 ({_KO_WEEKDAYS[day.weekday()]})"
    return f"{day:%a}, {day:%B} {day.day}"


def _display_time(value: Any, lang: str) -> str:
    moment = time.fromisoformat(str(value))
    if lang == "ko":
        half = "오전" if moment.hour < 12 else "오후"
        return f"{half} {(moment.hour - 1) % 12 + 1}:{moment.minute:02d}"
    return f"{(moment.hour - 1) % 12 + 1}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


class IntakeRules:
    """Opening hours and how far ahead bookings are taken (operators tune these)."""

    def __init__(self, *, opens: int = 9, closes: int = 18, horizon_days: int = 60) -> None:
        self.opens = opens
        self.closes = closes
        self.horizon_days = horizon_days

    def validate_date(self, value: Any, ctx: SlotContext) -> str:
        try:
            day = date.fromisoformat(str(value))
        except ValueError:
            raise InvalidValue(TEXT["date_past"]) from None
        if day < ctx.today:
            raise InvalidValue(TEXT["date_past"])
        if day > ctx.today + timedelta(days=self.horizon_days):
            raise InvalidValue(TEXT["date_far"], days=self.horizon_days)
        return day.isoformat()

    def validate_time(self, value: Any, ctx: SlotContext) -> str:
        try:
            moment = time.fromisoformat(str(value))
        except ValueError:
            raise InvalidValue(TEXT["time_closed"], open=self.opens, close=self.closes) from None
        if not self.opens <= moment.hour < self.closes:
            raise InvalidValue(TEXT["time_closed"], open=self.opens, close=self.closes)
        day = ctx.values.get("date")
        if day is not None:
            when = datetime.combine(date.fromisoformat(str(day)), moment, tzinfo=ctx.now.tzinfo)
            if when <= ctx.now:
                raise InvalidValue(TEXT["time_past"])
        return moment.strftime("%H:%M")


# ---- the handler and the admin command -------------------------------------------------------


class IntakeHandler:
    """Stores the confirmed booking and tells the user when they will be called."""

    def __init__(self, submissions: SubmissionStore, *, form_name: str = FORM_NAME) -> None:
        self.submissions = submissions
        self.form_name = form_name

    async def __call__(self, filled: Filled) -> HandlerResult:
        v = filled.values
        ref = f"{filled.now:%m%d}-{secrets.token_hex(2).upper()}"
        # Sortable by time first, so listing newest-first is a string sort of the keys.
        record_id = f"{int(filled.now.timestamp() * 1000):013d}-{ref}"
        record = {
            "id": record_id,
            "ref": ref,
            "form": self.form_name,
            "submitted_at": filled.now.isoformat(timespec="seconds"),
            "name": v["name"],
            "phone": v["phone"],
            "date": v["date"],
            "time": v["time"],
            "topic": v["topic"],
            "lang": filled.lang,
            "platform": filled.turn.platform,
            "user_id": filled.turn.user_id,
            "user_name": filled.turn.user_name,
            "session": filled.session_key,
        }
        appointment = datetime.combine(
            date.fromisoformat(str(v["date"])),
            time.fromisoformat(str(v["time"])),
            filled.now.tzinfo,
        )
        ttl = int((appointment - filled.now).total_seconds()) + GRACE_DAYS * 86_400
        try:
            await self.submissions.add(self.form_name, record, filled.turn, max(ttl, 86_400))
        except SessionStoreError as exc:
            log.error("intake not stored session=%s: %s", filled.session_key, exc)
            return HandlerResult(pick(TEXT["store_failed"], filled.lang), keep_form=True)
        log.info("intake stored session=%s ref=%s", filled.session_key, ref)
        lang = filled.lang
        when = f"{_display_date(v['date'], lang)} {_display_time(v['time'], lang)}"
        if lang != "ko":
            when = f"on {when}"
        phone_to = josa(v["phone"], "으로", "로")
        return HandlerResult(
            pick(TEXT["booked"], lang, ref=ref, when=when, phone=v["phone"], phone_to=phone_to)
        )


class SubmissionsCommand:
    """``/submissions [N]``: the N (default 10, at most 50) latest bookings, for admins only."""

    names = ("submissions",)

    def __init__(self, submissions: SubmissionStore, *, form_name: str = FORM_NAME) -> None:
        self.submissions = submissions
        self.form_name = form_name

    async def run(self, args: Sequence[str], caller: Caller) -> str:
        lang = caller.lang
        if not caller.bot_admin:
            return pick(TEXT["admin_denied"], lang)
        if not caller.turn.unobserved:
            return pick(TEXT["admin_private"], lang)
        if len(args) > 1 or (args and not re.fullmatch(r"[0-9]{1,3}", args[0])):
            return pick(TEXT["admin_usage"], lang)
        limit = max(1, min(int(args[0]) if args else 10, 50))
        try:
            records = await self.submissions.recent(self.form_name, caller.tenant, limit)
        except SessionStoreError as exc:
            log.error("listing submissions failed: %s", exc)
            return pick(TEXT["admin_down"], lang)
        if not records:
            return pick(TEXT["admin_empty"], lang)
        lines = [pick(TEXT["admin_head"], lang, count=len(records))]
        lines += [f"{i}. {describe(r, lang)}" for i, r in enumerate(records, 1)]
        return "\n".join(lines)


# ---- the form ---------------------------------------------------------------------------------


def intake_form(submissions: SubmissionStore, *, rules: IntakeRules | None = None) -> Form:
    """The consultation booking form (copy this function to write your own form)."""
    rules = rules or IntakeRules()
    return Form(
        name=FORM_NAME,
        title=TEXT["title"],
        description=(
            "Book a consultation with a person: collects the user's name, Korean phone "
            "number, preferred date and time, and the topic. Use when the user wants to book, "
            "schedule or request a consultation or an appointment."
        ),
        slots=(
            Slot(
                name="name",
                label=TEXT["name_label"],
                question=TEXT["name_question"],
                extract=extract_person_name,
                parse=lambda text, utt: clean_person_name(text),
                validate=_validate_name,
                description="The user's full name.",
                keywords=("성함", "name"),
            ),
            Slot(
                name="phone",
                label=TEXT["phone_label"],
                question=TEXT["phone_question"],
                extract=extract_phone,
                parse=_parse_phone,
                validate=_validate_phone,
                description="A Korean phone number, e.g. 010-1234-5678.",
                keywords=("번호", "연락처", "phone", "number"),
            ),
            Slot(
                name="date",
                label=TEXT["date_label"],
                question=TEXT["date_question"],
                extract=extract_date,
                parse=lambda text, utt: (
                    str(f.value) if (f := find_date(text, utt.today)) is not None else None
                ),
                validate=rules.validate_date,
                display=_display_date,
                description="The preferred day, as YYYY-MM-DD.",
                keywords=("날짜", "date", "day"),
                refers=DAY_REFERENCES,
            ),
            Slot(
                name="time",
                label=TEXT["time_label"],
                question={
                    k: v.format(open=rules.opens, close=rules.closes)
                    for k, v in TEXT["time_question"].items()
                },
                extract=extract_time,
                parse=lambda text, utt: str(f.value) if (f := find_time(text)) else None,
                validate=rules.validate_time,
                display=_display_time,
                description="The preferred time of day, as HH:MM (24-hour).",
                keywords=("시간", "time"),
                refers=TIME_REFERENCES,
            ),
            Slot(
                name="topic",
                label=TEXT["topic_label"],
                question=TEXT["topic_question"],
                extract=extract_topic,
                parse=_parse_topic,
                validate=_validate_topic,
                description="What the user wants to talk about, in their words.",
                keywords=("주제", "내용", "topic"),
            ),
        ),
        handler=IntakeHandler(submissions),
        triggers=Triggers(
            keywords=(
                r"상담\s*(?:을\s*|이\s*)?(?:예약|신청|잡|받)",
                r"\bbook\b.*\b(?:consultation|appointment|meeting)\b",
                r"\b(?:consultation|appointment)\b",
            ),
            hints=(r"상담", r"예약", r"\bbook", r"\bschedule"),
            needs_cue=False,
        ),
        confirm=True,
        confirm_question=TEXT["confirm"],
    )


def _validate_topic(value: Any, ctx: SlotContext) -> str:
    topic = " ".join(str(value).split())
    if not 2 <= len(topic) <= 200:
        raise InvalidValue(TEXT["topic_invalid"])
    return topic
