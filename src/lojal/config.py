"""`config/*.yaml` parsed into typed models: campaigns, brand, sender and delivery, tracking,
loyalty tiers. Every file is validated at load time; all problems are reported together."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, HttpUrl, field_validator, model_validator

from lojal.errors import Problem, ProjectError
from lojal.markets import Markets
from lojal.paths import Paths
from lojal.reco.spec import RecommendationSpec
from lojal.timezones import check_time_zone, in_quiet_hours, parse_clock
from lojal.yamlfile import read_yaml, validate_document

LOCALES = ("en", "nb", "sv", "da")
Locale = Literal["en", "nb", "sv", "da"]
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TEMPLATE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A CLDR currency pattern: text around one number part such as #,##0.00 (Babel accepts any text).
_MONEY_PATTERN = re.compile(r"^(?P<before>[^#0.,;]*)#*(?:,#*)?0[0,]*(?:\.0+)?(?P<after>[^#0.,;]*)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_control_chars(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain line breaks or control characters (they would inject e-mail headers)")
    return value


# Occasion: what makes two e-mails of a campaign "the same e-mail" for a customer. The ledger keys
# on (campaign, customer, occasion), so each kind says how often a customer may get the campaign.
OccasionKind = Literal[
    "last_order",   # once per triggering order (post-purchase, survey, replenishment)
    "lapse",        # once per lapse episode, keyed by the last order date (win-back)
    "tier",         # once per tier reached (tier upgrade)
    "birthday",     # once per year
    "run_date",     # once per night
    "once",         # once ever
]


_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _clock_text(v: str) -> str:
    if not _CLOCK.match(v):
        raise ValueError(f"{v!r} is not a time of day; write 24-hour HH:MM, e.g. '09:00' or '21:30'")
    return v


class QuietHours(_Strict):
    """Local wall-clock hours in which nothing is delivered; may wrap past midnight."""
    start: str = Field(description="HH:MM, e.g. '21:00'")
    end: str = Field(description="HH:MM, e.g. '08:00' (the first minute mail may go out again)")

    _clock = field_validator("start", "end")(_clock_text)

    @model_validator(mode="after")
    def _not_empty(self) -> "QuietHours":
        if self.start == self.end:
            raise ValueError("start and end are the same time; remove quiet_hours to allow every hour")
        return self

    def span(self):
        return parse_clock(self.start), parse_clock(self.end)


class SendTime(_Strict):
    """When a campaign's e-mails go out, in each customer's own time zone (the shop's when unknown)."""
    at: str | None = Field(default=None, description="local HH:MM, e.g. '09:00'; empty = as soon as planned")
    window_hours: int = Field(default=24, ge=1, le=72, description=(
        "the latest a message may go out after planning; later ones are not sent tonight "
        "(SendGrid schedules at most 72 hours ahead)"))
    quiet_hours: QuietHours | None = Field(default=None, description="overrides the file's quiet_hours")

    _clock = field_validator("at")(lambda v: v if v is None else _clock_text(v))

    @model_validator(mode="after")
    def _at_outside_quiet(self) -> "SendTime":
        if self.at and self.quiet_hours and in_quiet_hours(parse_clock(self.at), *self.quiet_hours.span()):
            raise ValueError(f"at: {self.at} falls in quiet_hours {self.quiet_hours.start}-{self.quiet_hours.end}; "
                             "pick a time outside them")
        return self


class FrequencyCap(_Strict):
    """At most `max` marketing e-mails per customer within any `hours` (counted when SendGrid accepted them)."""
    max: int = Field(ge=1, le=100)
    hours: int = Field(ge=1, le=24 * 366, description="window length in hours, e.g. 16, or 168 for 7 days")

    def describe(self) -> str:
        span = f"{self.hours // 24} days" if self.hours % 24 == 0 and self.hours >= 48 else f"{self.hours} hours"
        return f"at most {self.max} per {span}"


def _template_name(v: str) -> str:
    """A campaign's or an arm's template: a plain folder name under templates/ (never a path)."""
    if not _TEMPLATE.match(v):
        raise ValueError(f"'{v[:60]}' is not a folder name under templates/: use letters, digits, _ and - "
                         "(no paths, no '..')")
    return v


class Arm(_Strict):
    """One variant of an A/B test: a share of the campaign's recipients gets this subject and/or template."""
    name: str = Field(description="recorded with each send, e.g. 'a', 'short_subject'")
    weight: float = Field(gt=0, description="relative share; weights 1 and 1 split half and half")
    template: str | None = Field(default=None, description="template folder instead of the campaign's")
    subject: str | None = Field(default=None, description="key in the template's strings.yaml to use as the "
                                                          "subject instead of 'subject', e.g. 'subject_b'")

    @field_validator("name")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("use lower-case letters, digits and _ (start with a letter), e.g. 'short_subject'")
        return v

    @field_validator("template")
    @classmethod
    def _template_folder(cls, v: str | None) -> str | None:
        return v if v is None else _template_name(v)


class Offer(_Strict):
    """A personal offer code: `prefix` followed by a code derived from the customer and the shop's secret."""
    prefix: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,11}$", description="e.g. 'BACK' gives BACK-7K2Q9M4T")
    length: int = Field(default=8, ge=6, le=16)


class Campaign(_Strict):
    id: str = Field(description="stable identifier used in the ledger, tracking and file names")
    name: str
    description: str = ""
    enabled: bool = True
    segment: str = Field(description="segment name from segments/*.yaml")
    template: str = Field(description="template folder under templates/")
    priority: int = Field(ge=0, le=1000, description="higher wins when one customer qualifies for several")
    occasion: OccasionKind
    recommendations: RecommendationSpec | None = None
    categories: list[str] = Field(default_factory=list, description="extra SendGrid categories")
    exempt_from_caps: bool = Field(default=False, description=(
        "not limited by frequency_caps and not counted by them (e.g. a post-purchase thank-you)"))
    holdout: float = Field(default=0.10, ge=0, le=0.5, description=(
        "share of eligible customers deliberately not mailed, to measure what the campaign earns; 0 = none"))
    send_time: SendTime | None = Field(default=None, description="local delivery time; default: as soon as planned")
    arms: list[Arm] = Field(default_factory=list, description="A/B variants with weights (none = one version)")
    offer: Offer | None = Field(default=None, description="a personal offer code for each recipient")
    send_within_days: int = Field(default=7, ge=0, le=365, description=(
        "a message planned for a night and not sent that night (a stopped run, a provider outage) is "
        "sent late by a later run at most this many days after; after that it is expired with the reason "
        "(0: only on its own night)"))

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("use lower-case letters, digits and _ (start with a letter), e.g. 'win_back'")
        return v

    @field_validator("arms")
    @classmethod
    def _arms(cls, v: list[Arm]) -> list[Arm]:
        names = [a.name for a in v]
        if len(v) == 1:
            raise ValueError("an A/B test needs at least two arms; remove 'arms' for a single version")
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique: {', '.join(names)}")
        return v

    def quiet_hours(self, default: "QuietHours | None") -> "QuietHours | None":
        """The quiet hours that apply: the campaign's own, else the file's."""
        own = self.send_time.quiet_hours if self.send_time else None
        return own or default

    @field_validator("template")
    @classmethod
    def _template_folder(cls, v: str) -> str:
        return _template_name(v)


class CampaignsFile(_Strict):
    max_emails_per_customer_per_run: int = Field(default=1, ge=1, le=10)
    frequency_caps: list[FrequencyCap] = Field(default_factory=list, description=(
        "contact pressure across campaigns and nights; every cap must hold"))
    quiet_hours: QuietHours | None = Field(default=None, description="local hours without delivery, for every campaign")
    campaigns: list[Campaign] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> "CampaignsFile":
        seen: set[str] = set()
        for c in self.campaigns:
            if c.id in seen:
                raise ValueError(f"campaign id '{c.id}' is used twice; ids must be unique")
            seen.add(c.id)
        return self

    @model_validator(mode="after")
    def _send_times_outside_quiet_hours(self) -> "CampaignsFile":
        for c in self.campaigns:
            quiet = c.quiet_hours(self.quiet_hours)
            if c.send_time and c.send_time.at and quiet and in_quiet_hours(parse_clock(c.send_time.at), *quiet.span()):
                raise ValueError(f"campaign '{c.id}': send_time.at {c.send_time.at} falls in quiet_hours "
                                 f"{quiet.start}-{quiet.end}; pick a time outside them")
        return self

    @property
    def enabled(self) -> list[Campaign]:
        return sorted((c for c in self.campaigns if c.enabled), key=lambda c: (-c.priority, c.id))


class Brand(_Strict):
    name: str
    website_url: HttpUrl
    logo_url: HttpUrl
    primary_color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    postal_address: str = Field(min_length=10, description="printed in every marketing e-mail's footer")
    support_email: EmailStr
    unsubscribe_url: str | None = Field(default=None, description=(
        "the shop's own unsubscribe page, an https:// URL with {token} (a signed token: verify it with "
        "lojal.tracking.tokens.verify_unsubscribe_token); unset: Lojal's /unsubscribe/{token} at tracking.public_url"))
    preferences_url: str | None = None
    default_locale: Locale = "en"
    currency: str = Field(default="NOK", pattern=r"^[A-Z]{3}$")
    money_formats: dict[Locale, str] = Field(default_factory=dict, description="CLDR currency pattern per "
                                              "locale, e.g. nb: '¤ #,##0.00' for kr 1 299,00")
    timezone: str = Field(default="UTC", description="IANA zone; the shop's days (yesterday, 14 days ago, "
                                                      "birthdays, the default run date) begin at midnight here")

    @field_validator("money_formats")
    @classmethod
    def _currency_patterns(cls, v: dict[str, str]) -> dict[str, str]:
        for locale, pattern in v.items():
            match = _MONEY_PATTERN.match(pattern)
            signs = re.findall("¤+", match["before"] + match["after"]) if match else []
            if len(signs) != 1 or len(signs[0]) > 3:  # ¤ sign, ¤¤ ISO code, ¤¤¤ name
                raise ValueError(f"{locale}: {pattern!r} is not a currency pattern; write ¤ for the currency "
                                 "and #,##0.00 for the amount, e.g. '¤ #,##0.00' or '#,##0.00 ¤'")
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        error = check_time_zone(v)
        if error:
            raise ValueError(error)
        return v

    @field_validator("unsubscribe_url")
    @classmethod
    def _has_token(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "{token}" not in v or not v.startswith("https://"):
            raise ValueError("must be an https:// URL containing {token}, e.g. https://shop.example/unsubscribe/{token}")
        return v


class SendGridSettings(_Strict):
    api_key_env: str = Field(default="SENDGRID_API_KEY", description="environment variable holding the API key")
    base_url: HttpUrl = HttpUrl("https://api.sendgrid.com")
    ip_pool: str | None = None
    asm_group_id: int | None = Field(default=None, description="SendGrid unsubscribe group")
    api_key_secret_block: str | None = Field(default=None, description=(
        "name of a Prefect Secret block holding the API key (instead of the api_key_env variable)"))
    concurrency: int = Field(default=16, ge=1, le=256, description="Mail Send requests in flight at once")
    connect_timeout_seconds: float = Field(default=5, gt=0, le=120, description="to open a connection")
    timeout_seconds: float = Field(default=30, gt=0, le=600, description=(
        "to write a request and read its answer; past it after the body was sent the outcome is unknown"))
    connect_retries: int = Field(default=3, ge=0, le=10, description=(
        "retries (backoff with jitter) of a request that failed before its body was sent"))
    max_rate_wait_seconds: float = Field(default=60, ge=0, le=3600, description=(
        "longest total wait for X-RateLimit-Reset on 429s before the attempt counts as failed"))
    sandbox_mode: bool = Field(default=False, description=(
        "SendGrid validates every request and delivers nothing (answers 200): for validation runs only"))
    webhook_public_key: str | None = Field(default=None, description=(
        "Event Webhook verification key (base64, from SendGrid's settings); LOJAL_SENDGRID_WEBHOOK_PUBLIC_KEY wins"))
    webhook_max_age_seconds: int = Field(default=300, ge=10, le=86400, description=(
        "replay window: posts whose signed timestamp is further from now are refused"))
    webhook_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="largest webhook post accepted")


class Delivery(_Strict):
    backend: Literal["outbox", "sendgrid"] = Field(default="outbox", description=(
        "outbox writes .eml files and request bodies under <state>/outbox/; sendgrid posts to the v3 Mail Send "
        "API (`lojal run --delivery` overrides this for one run)"))
    batch_size: int = Field(default=4000, ge=1, le=10000, description=(
        "recipients per Prefect task (send-batch) at most; a campaign's batches are cut evenly, as many as a "
        "multiple of the batches running at once where each keeps at least a tenth of this"))
    window_size: int = Field(default=64, ge=1, le=1000, description=(
        "messages committed `sending` together before their requests leave and settled together after, one "
        "transaction between windows (at least the backend's concurrency); a crash leaves at most one window "
        "per batch in flight unsettled, for the next run's reconciliation"))
    max_attempts: int = Field(default=5, ge=1, le=50, description=(
        "attempts per message (this run's retry passes and later runs together) before a retryable failure "
        "is abandoned with its last error"))
    retry_pause_seconds: float = Field(default=1.0, ge=0, le=300, description=(
        "pause before a run's retry pass over the messages that failed in its previous pass (doubles each pass)"))
    pause_error_rate: float = Field(default=0.25, gt=0, le=1, description=(
        "a campaign pauses itself for the night when more than this share of its attempts tonight failed, "
        "were rejected or ended unknown; its remaining messages stay planned for a later run"))
    pause_min_messages: int = Field(default=200, ge=1, description=(
        "attempts a campaign makes before its error rate may pause it"))
    unknown_grace_minutes: float = Field(default=60, ge=0, description=(
        "how long to wait for the provider's events before an `unknown` message with none is judged "
        "never accepted and sent again"))
    unknown_settle_hours: float = Field(default=72, gt=0, description=(
        "an `unknown` message with no evidence either way is abandoned after this long, assumed received"))
    sendgrid: SendGridSettings = SendGridSettings()


class Sender(_Strict):
    from_email: EmailStr
    from_name: str
    reply_to: EmailStr | None = None
    delivery: Delivery = Delivery()

    _clean = field_validator("from_name")(_no_control_chars)


class Tracking(_Strict):
    utm_source: str = "lojal"
    utm_medium: str = "email"
    open_tracking: bool = True
    click_tracking: bool = True
    category_prefix: str = "lojal"
    public_url: HttpUrl | None = Field(default=None, description=(
        "where `lojal webhook serve` is reachable from the internet, e.g. https://mail.shop.example; "
        "unsubscribe links default to <public_url>/unsubscribe/{token}"))
    secret_block: str | None = Field(default=None, description=(
        "Prefect Secret block with the token signing secret (LOJAL_SECRET in the environment wins)"))
    attribution_window_days: float = Field(default=5, gt=0, le=90, description=(
        "an order within this many days after a recipient's last click is attributed to that e-mail"))
    attribute_opens: bool = Field(default=False, description=(
        "also attribute orders after an open (machine opens, e.g. Apple Mail Privacy Protection, never count)"))
    ab_confidence: float = Field(default=0.95, gt=0.5, lt=1, description="an A/B winner is named only past this confidence")
    ab_min_sample: int = Field(default=1000, ge=10, description="recipients per arm before a winner may be named")


class Tier(_Strict):
    name: str
    min_spend_12m: float = Field(ge=0)


class Loyalty(_Strict):
    tiers: list[Tier] = Field(min_length=1, description="ascending thresholds of 12-month spend")
    upgrade_catch_up_days: int = Field(default=7, ge=1, le=90, description=(
        "previous_tier is the tier at the last completed run, but never more than this many days back: "
        "after a gap, upgrades of the missed nights are caught up without mailing a whole year's"))

    @model_validator(mode="after")
    def _ascending(self) -> "Loyalty":
        mins = [t.min_spend_12m for t in self.tiers]
        if mins != sorted(mins) or len(set(mins)) != len(mins):
            raise ValueError("tiers must be listed by strictly increasing min_spend_12m")
        if mins[0] != 0:
            raise ValueError("the first tier must start at min_spend_12m: 0 so every customer has a tier")
        return self


class Rendering(_Strict):
    mjml: Literal["python", "official", "auto"] = Field(default="python", description=(
        "MJML compiler: python (the embedded port, default), official (MJML 5 through Node: needs `node` "
        "and `npm install --prefix bench/node`), auto (official when available, else python)"))


_CRON_FIELD = re.compile(r"^[0-9*/,\-A-Za-z?]+$")


class Runner(_Strict):
    """Where the render-and-send stage's batch tasks run (docs/operations.md, "Running on Dask")."""
    dask_address: str | None = Field(default=None, pattern=r"^(tcp|tls|ucx|inproc|ws|wss)://[^\s/]+:[0-9]{1,5}$",
                                     description=(
        "a running Dask scheduler (`dask scheduler`), e.g. tcp://10.0.0.5:8786; omitted: batches run one "
        "after another in the run's own process (`lojal run --dask-local N` starts a local cluster instead)"))
    batches_in_flight: int | None = Field(default=None, ge=1, le=1000, description=(
        "batches submitted at once: to the cluster (default: twice its worker threads), or in the run's own "
        "process, each in its own thread (default: 1, one after another)"))


class Schedule(_Strict):
    """When Prefect runs Lojal's deployments (`lojal serve`, prefect.yaml), and how runs are tagged."""
    runner: Runner = Runner()
    nightly: str = Field(default="0 2 * * *", description="cron of the nightly run, in `timezone`")
    report: str = Field(default="0 7 * * *", description="cron of the morning report, in `timezone`")
    timezone: str | None = Field(default=None, description="IANA zone of the crons (default: brand.timezone)")
    environment: str = Field(default="production", pattern=r"^[a-z][a-z0-9_-]{0,31}$",
                             description="tag env:<environment> on every run (production, staging, ...)")

    @field_validator("nightly", "report")
    @classmethod
    def _cron(cls, v: str) -> str:
        fields = v.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise ValueError(f"{v!r} is not a cron expression; write five fields: minute hour day month weekday, "
                             "e.g. '0 2 * * *' for 02:00 every day")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return None if v is None else Brand._known_zone(v)


class ProjectConfig(_Strict):
    campaigns: CampaignsFile
    brand: Brand
    sender: Sender
    tracking: Tracking
    loyalty: Loyalty
    markets: Markets | None = None  # None: one market paying in brand.currency (see `market_set`)
    rendering: Rendering = Rendering()

    @property
    def market_set(self) -> Markets:
        return self.markets or Markets.single(self.brand.currency)
    schedule: Schedule = Schedule()

    @property
    def unsubscribe_url_template(self) -> str:
        """The unsubscribe URL with {token}: the shop's own page, else Lojal's endpoint."""
        if self.brand.unsubscribe_url:
            return self.brand.unsubscribe_url
        return str(self.tracking.public_url).rstrip("/") + "/unsubscribe/{token}"

    def campaign(self, campaign_id: str) -> Campaign:
        for c in self.campaigns.campaigns:
            if c.id == campaign_id:
                return c
        raise KeyError(campaign_id)


CONFIG_FILES: dict[str, type[BaseModel]] = {
    "campaigns": CampaignsFile,
    "brand": Brand,
    "sender": Sender,
    "tracking": Tracking,
    "loyalty": Loyalty,
}
# Files a project may leave out: ProjectConfig's defaults apply (one market in brand.currency, the Python
# MJML port, the default schedule).
OPTIONAL_CONFIG_FILES: dict[str, type[BaseModel]] = {
    "markets": Markets,
    "rendering": Rendering,
    "schedule": Schedule,
}


def check_config(paths: Paths) -> tuple[ProjectConfig | None, list[Problem]]:
    """Load every config file; return the config (None when any file is broken) and all problems."""
    parts, problems = load_config_parts(paths)
    if problems:
        return None, problems
    if parts["brand"].unsubscribe_url is None and parts["tracking"].public_url is None:
        shown = paths.relative(paths.config_dir / "brand.yaml")
        return None, [Problem(shown, None, None, "no unsubscribe page: set tracking.public_url in config/tracking.yaml "
                              "(where `lojal webhook serve` is reachable; links go to its /unsubscribe/{token}) or "
                              "the shop's own unsubscribe_url here (docs/tracking.md)")]
    return ProjectConfig(**parts), []


def load_config_parts(paths: Paths) -> tuple[dict[str, BaseModel], list[Problem]]:
    """Each config file that is valid, by name, and the problems of the others."""
    parts: dict[str, BaseModel] = {}
    problems: list[Problem] = []
    for name, model in CONFIG_FILES.items():
        path = paths.config_dir / f"{name}.yaml"
        shown = paths.relative(path)
        if not path.exists():
            problems.append(Problem(shown, None, None, f"missing file: create {shown} (see docs/configuration.md)"))
            continue
        try:
            parts[name] = validate_document(read_yaml(path, shown), model)
        except ProjectError as exc:
            problems.extend(exc.problems)
    for name, model in OPTIONAL_CONFIG_FILES.items():
        path = paths.config_dir / f"{name}.yaml"
        if not path.exists():
            continue
        try:
            parts[name] = validate_document(read_yaml(path, paths.relative(path)), model)
        except ProjectError as exc:
            problems.extend(exc.problems)
    return parts, problems


def load_config(paths: Paths) -> ProjectConfig:
    config, problems = check_config(paths)
    if problems:
        raise ProjectError(problems)
    assert config is not None
    return config
