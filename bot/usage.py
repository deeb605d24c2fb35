"""Token accounting and budgets: what each user, group and tenant spent, per day and month.

Every model call a turn makes (the answer, a form's tool call or phrasing, a summary, an
embedding) reports the API's own ``usage``; :class:`Meter` collects them for the turn and
hands them to the :class:`UsageLedger` once the answer is delivered (and later calls of the
turn, such as a summary written afterwards, as they come). Thinking tokens are counted where
the API reports them (``completion_tokens_details.reasoning_tokens``; they are part of the
output tokens, as billed), and cached input likewise (part of the input).

Counters live in the store: in memory for one process, or on Redis, shared by every replica
and kept across restarts. On Redis all counters of one tenant (a Telegram bot, a Slack
workspace, a web key) share one hash tag, so a turn's counters are written by one Lua script
in one round trip, on Redis Cluster too. Keys expire on their own: days after 3 days, months
after 400 days (a year of monthly figures for the operator), the month's top users after 40.

Days and months are UTC, the way the API bills them. Budgets (``USER_DAILY_TOKEN_BUDGET``,
``USER_MONTHLY_TOKEN_BUDGET``, ``GROUP_DAILY_TOKEN_BUDGET``) are checked before a model is
called: one read of at most three counters. A turn that starts under budget is answered in
full, so a user may end a little over the budget; the next turn is refused until the period
resets. When Redis fails, the check lets the turn through (a budget is a cap on cost, not a
security boundary) and says so in the log, once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bot.i18n import t
from bot.observability import NO_METRICS, Metrics
from bot.sessions import OutageLog, on_redis, redis_errors
from bot.sessions.base import SessionStore
from bot.sessions.index import tenant_of
from bot.turn import Turn

if TYPE_CHECKING:
    from bot.commands import Caller
    from bot.glm.types import Usage
    from bot.sessions.redis import RedisClient
    from bot.settings import Settings

log = logging.getLogger(__name__)

TOKEN_TYPES = ("input", "output", "thinking", "cached")
DAY_TTL = 3 * 86_400
MONTH_TTL = 400 * 86_400
TOP_TTL = 40 * 86_400
FORGOTTEN = "-"  # a user who has since used /forget, as the admins' top list shows them


@dataclass(frozen=True, slots=True)
class Tokens:
    """Tokens by type; ``total`` is what is billed (input + output)."""

    input: int = 0
    output: int = 0
    thinking: int = 0  # part of output
    cached: int = 0  # part of input

    @property
    def total(self) -> int:
        return self.input + self.output

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.input + other.input,
            self.output + other.output,
            self.thinking + other.thinking,
            self.cached + other.cached,
        )

    def __bool__(self) -> bool:
        return self.total > 0 or self.thinking > 0 or self.cached > 0

    def fields(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in TOKEN_TYPES}

    @classmethod
    def of(cls, usage: Usage) -> Tokens:
        return cls(
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.reasoning_tokens,
            usage.cached_tokens,
        )

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any], prefix: str = "") -> Tokens:
        def get(name: str) -> int:
            value = fields.get(prefix + name)
            if value is None:
                value = fields.get((prefix + name).encode())
            return int(value or 0)

        return cls(*(get(name) for name in TOKEN_TYPES))


@dataclass(frozen=True, slots=True)
class Spender:
    """Whom a turn's tokens count against: a user of a tenant, and the group it was in."""

    tenant: str  # "telegram:<bot>", "slack:<team>", "web:<key>"
    user: str
    group: str = ""  # the group, channel or thread's chat; "" in a private chat

    @classmethod
    def of(cls, turn: Turn) -> Spender:
        return cls(
            tenant_of(turn),
            turn.user_id,
            "" if turn.is_private else turn.chat_id,
        )


@dataclass(frozen=True, slots=True)
class Period:
    """The UTC day and month of ``now``, and when each ends."""

    day: str
    month: str
    day_ends: datetime
    month_ends: datetime

    @classmethod
    def of(cls, now: datetime) -> Period:
        now = now.astimezone(UTC)
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        first = start.replace(day=1)
        next_month = (first + timedelta(days=32)).replace(day=1)
        return cls(
            start.strftime("%Y-%m-%d"),
            first.strftime("%Y-%m"),
            start + timedelta(days=1),
            next_month,
        )


@dataclass(frozen=True, slots=True)
class Budgets:
    """Tokens a user may spend a day and a month, and a group a day (None: unlimited)."""

    user_day: int | None = None
    user_month: int | None = None
    group_day: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.user_day, self.user_month, self.group_day))

    @classmethod
    def from_settings(cls, settings: Settings) -> Budgets:
        return cls(
            settings.user_daily_token_budget,
            settings.user_monthly_token_budget,
            settings.group_daily_token_budget,
        )


@dataclass(frozen=True, slots=True)
class Spent:
    user_day: int = 0
    user_month: int = 0
    group_day: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """May the turn call the model; if not, which budget is spent and when it resets."""

    allowed: bool
    limit: str = ""  # "user_day", "user_month" or "group_day"
    resets_at: datetime | None = None


ALLOWED = Verdict(True)


def judge(budgets: Budgets, spent: Spent, period: Period) -> Verdict:
    """The first budget ``spent`` has reached, the longest-lasting first."""
    if budgets.user_month is not None and spent.user_month >= budgets.user_month:
        return Verdict(False, "user_month", period.month_ends)
    if budgets.user_day is not None and spent.user_day >= budgets.user_day:
        return Verdict(False, "user_day", period.day_ends)
    if budgets.group_day is not None and spent.group_day >= budgets.group_day:
        return Verdict(False, "group_day", period.day_ends)
    return ALLOWED


@dataclass(frozen=True, slots=True)
class TenantReport:
    """A tenant's figures for its admins: totals, the month's top users, tokens by model."""

    day: Tokens
    month: Tokens
    top: list[tuple[str, int]]  # (user id, tokens this month), most first
    models: dict[str, Tokens]  # this month


# ---- where the counters are kept -----------------------------------------------------------------


class _Keys:
    """Key names; every key of a tenant shares the tenant's hash tag (``tag``: the tenant as
    a hash tag body; in memory any injective name will do).

    Users are named by a keyed hash (``pepper``: a secret of the deployment), never by their
    id: the counters must outlive a /forget (or it would reset a budget) yet hold nothing that
    names the user. The ids shown to admins are kept apart, in the month's ``names`` hash,
    which /forget empties of the user.
    """

    def __init__(self, prefix: str, tag: Callable[[str], str] = str, pepper: bytes = b"") -> None:
        self.prefix = prefix
        self.tag = tag
        self.pepper = hashlib.sha256(b"usage:" + pepper).digest()

    def base(self, tenant: str) -> str:
        return f"{self.prefix}:usage:{{{self.tag(tenant)}}}"

    def who(self, s: Spender) -> str:
        """The user's pseudonym within the tenant."""
        name = f"{s.tenant}\0{s.user}".encode()
        return hashlib.blake2b(name, key=self.pepper, digest_size=10).hexdigest()

    def user_day(self, s: Spender, p: Period) -> str:
        return f"{self.base(s.tenant)}:user:{self.who(s)}:day:{p.day}"

    def user_month(self, s: Spender, p: Period) -> str:
        return f"{self.base(s.tenant)}:user:{self.who(s)}:month:{p.month}"

    def names(self, tenant: str, p: Period) -> str:
        return f"{self.base(tenant)}:names:{p.month}"

    def group_day(self, s: Spender, p: Period) -> str:
        return f"{self.base(s.tenant)}:group:{s.group}:day:{p.day}"

    def tenant_day(self, tenant: str, p: Period) -> str:
        return f"{self.base(tenant)}:day:{p.day}"

    def tenant_month(self, tenant: str, p: Period) -> str:
        return f"{self.base(tenant)}:month:{p.month}"

    def top(self, tenant: str, p: Period) -> str:
        return f"{self.base(tenant)}:top:{p.month}"


@dataclass(frozen=True, slots=True)
class _Add:
    """One turn's counting: (key, field, amount) increments, each key's lifetime, and the
    month's top-users entry."""

    increments: list[tuple[str, str, int]]
    ttls: dict[str, int]
    top_key: str
    member: str  # the user's pseudonym
    total: int
    names_key: str
    user: str  # the id shown to admins, under the pseudonym in ``names_key``


def _plan(keys: _Keys, spender: Spender, spent: Mapping[str, Tokens], p: Period) -> _Add:
    tokens = sum(spent.values(), Tokens())
    fields = {**tokens.fields(), "total": tokens.total}
    ttls = {
        keys.user_day(spender, p): DAY_TTL,
        keys.user_month(spender, p): MONTH_TTL,
        keys.tenant_day(spender.tenant, p): DAY_TTL,
        keys.tenant_month(spender.tenant, p): MONTH_TTL,
    }
    if spender.group:
        ttls[keys.group_day(spender, p)] = DAY_TTL
    increments = [(key, name, n) for key in ttls for name, n in fields.items() if n]
    month = keys.tenant_month(spender.tenant, p)
    for model, by_model in spent.items():
        increments += [(month, f"model:{model}:{k}", n) for k, n in by_model.fields().items() if n]
    top, names = keys.top(spender.tenant, p), keys.names(spender.tenant, p)
    ttls[top] = ttls[names] = TOP_TTL
    return _Add(increments, ttls, top, keys.who(spender), tokens.total, names, spender.user)


class UsageLedger(Protocol):
    """Where tokens are counted (in memory, or on Redis for every replica)."""

    async def add(self, spender: Spender, spent: Mapping[str, Tokens], now: datetime) -> None:
        """Count ``spent`` (tokens by model) for ``spender``."""
        ...

    async def spent(self, spender: Spender, now: datetime) -> Spent:
        """Totals the budgets look at (one read)."""
        ...

    async def user(self, spender: Spender, now: datetime) -> tuple[Tokens, Tokens]:
        """The user's tokens today and this month."""
        ...

    async def tenant(self, tenant: str, now: datetime, *, top: int = 10) -> TenantReport: ...

    async def forget(self, spender: Spender, now: datetime) -> None:
        """Take the user off the tenant's top list (the /forget of a user)."""
        ...


class MemoryUsageLedger:
    """Counters of one process (lost on restart), with the same keys and lifetimes."""

    def __init__(
        self, *, prefix: str = "bot", pepper: bytes = b"", clock: Callable[[], float] = time.time
    ) -> None:
        self.keys = _Keys(prefix, pepper=pepper)
        self.clock = clock
        self._hashes: dict[str, Counter[str]] = {}
        self._names: dict[str, dict[str, str]] = {}  # pseudonym → id, per tenant and month
        self._expires: dict[str, float] = {}
        self._adds = 0

    def _live(self, key: str) -> Counter[str]:
        if self._expires.get(key, float("inf")) <= self.clock():
            self._hashes.pop(key, None)
            self._names.pop(key, None)
            self._expires.pop(key, None)
        return self._hashes.get(key) or Counter()

    async def add(self, spender: Spender, spent: Mapping[str, Tokens], now: datetime) -> None:
        plan = _plan(self.keys, spender, spent, Period.of(now))
        for key, name, amount in plan.increments:
            self._hashes[key] = self._live(key)
            self._hashes[key][name] += amount
        self._hashes[plan.top_key] = self._live(plan.top_key)
        self._hashes[plan.top_key][plan.member] += plan.total
        self._names[plan.names_key] = self._names.get(plan.names_key) or {}
        self._names[plan.names_key][plan.member] = plan.user
        for key, ttl in plan.ttls.items():
            self._expires[key] = self.clock() + ttl
        self._adds += 1
        if self._adds % 1000 == 0:
            for key in [k for k, at in self._expires.items() if at <= self.clock()]:
                self._live(key)

    async def spent(self, spender: Spender, now: datetime) -> Spent:
        p = Period.of(now)
        group = self._live(self.keys.group_day(spender, p))["total"] if spender.group else 0
        return Spent(
            self._live(self.keys.user_day(spender, p))["total"],
            self._live(self.keys.user_month(spender, p))["total"],
            group,
        )

    async def user(self, spender: Spender, now: datetime) -> tuple[Tokens, Tokens]:
        p = Period.of(now)
        return (
            Tokens.from_fields(self._live(self.keys.user_day(spender, p))),
            Tokens.from_fields(self._live(self.keys.user_month(spender, p))),
        )

    async def tenant(self, tenant: str, now: datetime, *, top: int = 10) -> TenantReport:
        p = Period.of(now)
        month = self._live(self.keys.tenant_month(tenant, p))
        ranking = self._live(self.keys.top(tenant, p)).most_common(top)
        self._live(self.keys.names(tenant, p))
        names = self._names.get(self.keys.names(tenant, p), {})
        return TenantReport(
            Tokens.from_fields(self._live(self.keys.tenant_day(tenant, p))),
            Tokens.from_fields(month),
            [(names.get(who, FORGOTTEN), int(n)) for who, n in ranking],
            _models(month),
        )

    async def forget(self, spender: Spender, now: datetime) -> None:
        names = self._names.get(self.keys.names(spender.tenant, Period.of(now)), {})
        names.pop(self.keys.who(spender), None)


def _models(month: Mapping[Any, Any]) -> dict[str, Tokens]:
    """Tokens by model from a month hash's ``model:<name>:<type>`` fields."""
    names: set[str] = set()
    for raw in month:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        if name.startswith("model:"):
            names.add(name[len("model:") : name.rindex(":")])
    return {n: Tokens.from_fields(month, f"model:{n}:") for n in sorted(names)}


# One turn's counting in one round trip. KEYS: the keys to increment, then the top-users set,
# then the names hash. ARGV: how many increments; then (key index, field, amount) for each;
# then the user's pseudonym, its amount and its id; then each key's lifetime in seconds (in
# the order of KEYS).
_ADD = """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local at = 2 + 3 * i
  redis.call('HINCRBY', KEYS[tonumber(ARGV[at])], ARGV[at + 1], ARGV[at + 2])
end
local rest = 2 + 3 * n
local top, names = #KEYS - 1, #KEYS
redis.call('ZINCRBY', KEYS[top], ARGV[rest + 1], ARGV[rest])
redis.call('HSET', KEYS[names], ARGV[rest], ARGV[rest + 2])
for k = 1, #KEYS do
  redis.call('EXPIRE', KEYS[k], ARGV[rest + 2 + k])
end
return n
"""


class RedisUsageLedger:
    """Counters on Redis, shared by every replica and kept across restarts."""

    def __init__(self, client: RedisClient, *, prefix: str = "bot", pepper: bytes = b"") -> None:
        from bot.sessions.redis import hash_tag

        self.client = client
        self.keys = _Keys(prefix, hash_tag, pepper)
        self._script = client.register_script(_ADD)

    async def add(self, spender: Spender, spent: Mapping[str, Tokens], now: datetime) -> None:
        plan = _plan(self.keys, spender, spent, Period.of(now))
        hashes = [k for k in plan.ttls if k not in (plan.top_key, plan.names_key)]
        index = {key: i + 1 for i, key in enumerate(hashes)}
        args: list[str | int] = [len(plan.increments)]
        for key, name, amount in plan.increments:
            args += [index[key], name, amount]
        args += [plan.member, plan.total, plan.user]
        keys = [*hashes, plan.top_key, plan.names_key]
        args += [plan.ttls[k] for k in keys]
        await self._script(keys=keys, args=args)

    async def spent(self, spender: Spender, now: datetime) -> Spent:
        p = Period.of(now)
        keys = [self.keys.user_day(spender, p), self.keys.user_month(spender, p)]
        if spender.group:
            keys.append(self.keys.group_day(spender, p))
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, "total")
            values = [int(v or 0) for v in await pipe.execute()]
        return Spent(*values)

    async def user(self, spender: Spender, now: datetime) -> tuple[Tokens, Tokens]:
        p = Period.of(now)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.user_day(spender, p))
            pipe.hgetall(self.keys.user_month(spender, p))
            day, month = await pipe.execute()
        return Tokens.from_fields(day), Tokens.from_fields(month)

    async def tenant(self, tenant: str, now: datetime, *, top: int = 10) -> TenantReport:
        p = Period.of(now)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.tenant_day(tenant, p))
            pipe.hgetall(self.keys.tenant_month(tenant, p))
            pipe.zrevrange(self.keys.top(tenant, p), 0, top - 1, withscores=True)
            pipe.hgetall(self.keys.names(tenant, p))
            day, month, ranking, names = await pipe.execute()
        ids = {_text(who): _text(user) for who, user in names.items()}
        users = [(ids.get(_text(who), FORGOTTEN), int(score)) for who, score in ranking]
        return TenantReport(
            Tokens.from_fields(day), Tokens.from_fields(month), users, _models(month)
        )

    async def forget(self, spender: Spender, now: datetime) -> None:
        names = self.keys.names(spender.tenant, Period.of(now))
        await self.client.hdel(names, self.keys.who(spender))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def build_usage_ledger(store: SessionStore, pepper: bytes = b"") -> UsageLedger:
    """On the Redis store's client when sessions are in Redis, else in memory; users named by
    a hash keyed with ``pepper`` (a secret every replica has)."""
    if on_redis(store):
        return RedisUsageLedger(store.client, prefix=store.prefix, pepper=pepper)
    return MemoryUsageLedger(pepper=pepper)


# ---- one turn's tokens ---------------------------------------------------------------------------


@dataclass(slots=True)
class Meter:
    """The tokens of one turn's model calls, by model; ``allowed`` is the budget's verdict
    (model calls are refused without it)."""

    spender: Spender
    verdict: Verdict = ALLOWED
    spent: dict[str, Tokens] = field(default_factory=dict)
    on_late: Callable[[Meter], None] | None = None  # counting already done: count this now

    def add(self, model: str, tokens: Tokens) -> None:
        if not tokens:
            return
        self.spent[model] = self.spent.get(model, Tokens()) + tokens
        if self.on_late is not None:
            self.on_late(self)

    def take(self) -> dict[str, Tokens]:
        spent, self.spent = self.spent, {}
        return spent


_METER: ContextVar[Meter | None] = ContextVar("usage_meter", default=None)


def current_meter() -> Meter | None:
    return _METER.get()


@contextlib.contextmanager
def metering(meter: Meter) -> Iterator[Meter]:
    """Model calls inside (and tasks started inside) count into ``meter`` and ask its verdict."""
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def count_usage(model: str, usage: Usage | None) -> None:
    """Called by every model client with the API's ``usage`` of one call."""
    meter = _METER.get()
    if meter is not None and usage is not None:
        meter.add(model, Tokens.of(usage))


def model_allowed() -> bool:
    meter = _METER.get()
    return meter is None or meter.verdict.allowed


class Accounting:
    """Budgets checked before a turn's model calls; its tokens counted after its answer."""

    def __init__(
        self,
        ledger: UsageLedger,
        budgets: Budgets,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics | None = None,
    ) -> None:
        self.ledger = ledger
        self.budgets = budgets
        self.now = now
        self.metrics = metrics if metrics is not None else NO_METRICS
        # Redis failing: one warning a minute (the client's password hidden).
        self._outage = OutageLog(
            getattr(ledger, "client", None),
            log,
            "usage counters unavailable (budgets not enforced)",
        )
        self._writes: set[asyncio.Task[None]] = set()

    async def check(self, spender: Spender, *, exempt: bool = False) -> Verdict:
        """May ``spender`` call the model now (admins are ``exempt``)?"""
        if exempt or not self.budgets.any:
            return ALLOWED
        now = self.now()
        try:
            spent = await self.ledger.spent(spender, now)
        except redis_errors() as exc:
            self._outage(exc)
            return ALLOWED
        return judge(self.budgets, spent, Period.of(now))

    async def forget(self, turn: Turn) -> None:
        """The user's /forget: their id leaves the store (the admins' list shows "-" for
        them). The counts stay, under a pseudonym, until they expire: numbers that name no
        one, kept so that /forget is no way around a budget."""
        try:
            await self.ledger.forget(Spender.of(turn), self.now())
        except redis_errors() as exc:
            self._outage(exc)

    def settle(self, meter: Meter) -> None:
        """The turn is answered: write its tokens down in the background (no one waits for
        it), and any later call of the turn's (a summary written afterwards) as it ends."""
        meter.on_late = self._write
        self._write(meter)

    def _write(self, meter: Meter) -> None:
        spent = meter.take()
        if not spent:
            return
        task = asyncio.get_running_loop().create_task(self.record(meter.spender, spent))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def record(self, spender: Spender, spent: Mapping[str, Tokens]) -> None:
        for model, tokens in spent.items():
            for kind, n in tokens.fields().items():
                if n:
                    self.metrics.tokens_counted(model, kind, n)
        try:
            await self.ledger.add(spender, spent, self.now())
        except redis_errors() as exc:
            self._outage(exc)

    async def drain(self) -> None:
        """Until every count started so far is written (shutdown, tests)."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


# ---- what users read -----------------------------------------------------------------------------


def _duration(seconds: float, lang: str) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return t("duration_dh", lang, days=hours // 24, hours=hours % 24)
    if hours:
        return t("duration_hm", lang, hours=hours, minutes=minutes)
    return t("duration_m", lang, minutes=minutes)


def budget_notice(verdict: Verdict, lang: str, now: datetime) -> str:
    """The one message a turn over budget gets: which budget, and when it resets."""
    resets = verdict.resets_at or now
    at = resets.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    left = (resets - now).total_seconds()
    return t(f"budget_{verdict.limit}", lang, reset=_duration(left, lang), at=at)


def _tokens(tokens: Tokens, lang: str) -> str:
    return t(
        "usage_tokens",
        lang,
        total=f"{tokens.total:,}",
        input=f"{tokens.input:,}",
        output=f"{tokens.output:,}",
        thinking=f"{tokens.thinking:,}",
    )


class UsageCommand:
    """``/usage``: the caller's tokens today and this month and the budget left; for the
    bot's admins in a private chat also the tenant's totals, top users (ids only) and models.
    """

    names = ("usage",)

    def __init__(self, accounting: Accounting) -> None:
        self.accounting = accounting

    async def run(self, args: Sequence[str], caller: Caller) -> str:
        lang = caller.lang
        ledger = self.accounting.ledger
        now = self.accounting.now()
        spender = Spender.of(caller.turn)
        day, month = await ledger.user(spender, now)
        text = t(
            "usage_user",
            lang,
            day=_tokens(day, lang),
            month=_tokens(month, lang),
            left=await self._left(spender, day, month, caller, now),
        )
        if not caller.bot_admin:
            return text
        if not caller.turn.is_private:
            return text + t("usage_admin_private", lang)
        report = await ledger.tenant(spender.tenant, now)
        text += t(
            "usage_tenant",
            lang,
            tenant=spender.tenant,
            day=_tokens(report.day, lang),
            month=_tokens(report.month, lang),
        )
        if not report.top:
            return text + t("usage_top_none", lang)
        text += t("usage_top", lang)
        for rank, (user, total) in enumerate(report.top, 1):
            text += f"\n{rank}. {user} — {total:,}"
        text += t("usage_models", lang)
        for model, tokens in report.models.items():
            text += f"\n· {model}: {_tokens(tokens, lang)}"
        return text

    async def _left(
        self, spender: Spender, day: Tokens, month: Tokens, caller: Caller, now: datetime
    ) -> str:
        budgets = self.accounting.budgets
        if caller.bot_admin and budgets.any:
            return t("usage_admin_exempt", caller.lang)
        parts = []
        if budgets.user_day is not None:
            parts.append(
                t("usage_left_day", caller.lang, n=f"{max(0, budgets.user_day - day.total):,}")
            )
        if budgets.user_month is not None:
            left = max(0, budgets.user_month - month.total)
            parts.append(t("usage_left_month", caller.lang, n=f"{left:,}"))
        if budgets.group_day is not None and spender.group:
            spent = await self.accounting.ledger.spent(spender, now)
            left = max(0, budgets.group_day - spent.group_day)
            parts.append(t("usage_left_group", caller.lang, n=f"{left:,}"))
        return " · ".join(parts) if parts else t("usage_unlimited", caller.lang)
