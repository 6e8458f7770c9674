"""Settings: the one place that reads the environment (and `.env`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    Field,
    Secret,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ChannelId = Annotated[str, StringConstraints(pattern=r"^[CG][A-Z0-9]{2,}$")]
# Whom a severity brings in: a user id (U0123ABCD) or a user-group handle (@oncall-payments).
Invitee = Annotated[
    str, StringConstraints(pattern=r"^(?:[UW][A-Z0-9]{2,}|@?[a-z0-9][a-z0-9._-]*)$")
]
BotToken = Secret[Annotated[str, StringConstraints(pattern=r"^xoxb-")]]
AppToken = Secret[Annotated[str, StringConstraints(pattern=r"^xapp-")]]
# A shared secret someone made up: long enough not to be guessed.
WebhookToken = Secret[Annotated[str, StringConstraints(min_length=16)]]


@dataclass(frozen=True)
class Limits:
    """The sane range of a number a setting or a request carries."""

    low: float
    high: float
    unit: str
    note: str = ""

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"from {self.low:g} to {self.high:g} {self.unit}{note}"

    def holds(self, value: float) -> bool:
        try:
            return math.isfinite(value) and self.low <= value <= self.high
        except OverflowError:  # an integer too large for a float
            return False

    def check(self, value: float) -> float:
        if not self.holds(value):
            raise ValueError(f"must be {self}")
        return value


# Reminder intervals (REMINDER_INTERVAL_MINUTES, a severity's reminder_minutes): at least a
# minute, so a channel is never flooded; at most a day, so an incident is never forgotten.
# The tests lower the floor to run reminders in fractions of a second, so this bound is read
# when a value is checked (a validator), not fixed in the fields' constraints.
REMINDER_MINUTES = Limits(1, 24 * 60, "minutes", "24 hours")
# A snooze of the update reminder.
SNOOZE_MINUTES = Limits(1, 24 * 60, "minutes", "24 hours")
# Other names people type for the built-in roles (`/incident role ic @bob`).
ROLE_ALIASES = {"ic": "commander", "incident_commander": "commander", "communications": "comms"}


class AlertRule(BaseModel):
    """Alerts whose labels (and `source`) match all of `match` get this severity and action;
    the first matching rule wins."""

    match: dict[str, str] = Field(default_factory=dict)
    severity: str | None = None
    action: Literal["declare", "triage"] | None = None
    # Resolve the incident when every alert of its group has resolved.
    resolve: bool = False


class Severity(BaseModel):
    """One severity level. Lower position in the list = worse."""

    name: str = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9_-]+$")
    label: str = Field(min_length=1, max_length=40)
    description: str = Field(default="", max_length=150)
    # Overrides REMINDER_INTERVAL_MINUTES for incidents at this level.
    reminder_minutes: float | None = None
    # Brought into the channel when an incident is declared at or raised to this level.
    invite: list[Invitee] = Field(default_factory=list, max_length=50)

    @field_validator("reminder_minutes")
    @classmethod
    def _reminder_minutes(cls, v: float | None) -> float | None:
        return v if v is None else REMINDER_MINUTES.check(v)


class Role(BaseModel):
    """A role someone holds during an incident."""

    name: str = Field(min_length=1, max_length=30, pattern=r"^[a-z][a-z0-9_-]*$")
    label: str = Field(min_length=1, max_length=40)
    description: str = Field(default="", max_length=300)

    @field_validator("name", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v


def role_spelling(name: str) -> str:
    """A role name as people may type it: any case, `-` or `_`."""
    return name.strip().lower().replace("-", "_")


DEFAULT_SEVERITIES = [
    Severity(name="SEV1", label="Critical", description="Customers cannot use the product."),
    Severity(name="SEV2", label="Major", description="A core feature is broken or very slow."),
    Severity(name="SEV3", label="Minor", description="Partial or degraded service; workaround."),
    Severity(name="SEV4", label="Low", description="Little or no customer impact."),
]

BUILTIN_ROLES = [
    Role(
        name="commander",
        label="Incident Commander",
        description="Leads the response: decides, delegates and keeps everyone on one plan.",
    ),
    Role(
        name="comms",
        label="Communications Lead",
        description="Keeps stakeholders informed: posts status updates on time.",
    ),
]


class DatabaseSettings(BaseSettings):
    """Just the database, for commands that only read what the bot stored."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str = Field(
        default="sqlite:///incident-bot.db", pattern=r"^(sqlite|postgres|postgresql)(\+\w+)?://"
    )
    # The longest any one wait for the database may take.
    database_timeout_seconds: float = Field(default=5.0, ge=1, le=60, allow_inf_nan=False)


# What an outgoing webhook can follow (OUTGOING_WEBHOOKS' "events").
WebhookEvent = Literal[
    "declared",
    "severity_changed",
    "status_changed",
    "role_assigned",
    "update_posted",
    "resolved",
    "reopened",
    "follow_up_created",
    "postmortem_compiled",
]


class OutgoingWebhook(BaseModel):
    """A receiver of incident events, each delivery signed with its secret."""

    url: str = Field(pattern=r"^https?://[^\s/]+", max_length=2000)
    secret: WebhookToken
    # Every event when left out.
    events: list[WebhookEvent] = Field(default_factory=lambda: list(get_args(WebhookEvent)))
    # Private incidents reach only receivers marked for them.
    include_private: bool = False


class Settings(DatabaseSettings):
    slack_bot_token: BotToken
    slack_signing_secret: SecretStr | None = None
    slack_app_token: AppToken | None = None
    slack_api_url: str = Field(default="https://slack.com/api/", pattern=r"^https?://[^/\s]+")
    # Wait for room in Slack's documented rate limits before a call, rather than be refused.
    slack_pacing: bool = True
    port: int = Field(default=3000, ge=1, le=65535)
    incident_channel_prefix: str = Field(default="inc", min_length=1, max_length=20)
    announcements_channel: ChannelId | None = None
    reminder_interval_minutes: float = 30
    # JSON list of {"name", "label", "description", "reminder_minutes"}; worst first.
    severities: Annotated[list[Severity], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SEVERITIES)
    )
    default_severity: str | None = None
    # JSON list of {"name", "label", "description"}: roles besides commander and comms.
    extra_roles: Annotated[list[Role], NoDecode] = Field(default_factory=list)
    # A reaction with this emoji puts a message on the incident's timeline.
    timeline_emoji: str = Field(default="pushpin", pattern=r"^:?[a-z0-9_+'-]+:?$")
    log_level: str = Field(default="INFO", pattern=r"^(?i:debug|info|warning|error|critical)$")
    # Alert intake (POST /alerts/...): off unless a token is set.
    alert_webhook_token: WebhookToken | None = None
    # JSON list of {"match": {label: value}, "severity", "action": "declare"|"triage"}.
    alert_rules: Annotated[list[AlertRule], NoDecode] = Field(default_factory=list)
    # Where triaged alerts are posted with Declare and Dismiss buttons.
    alerts_channel: ChannelId | None = None
    # Nudges after the incident, each off at 0: a resolved incident without a postmortem
    # draft, follow-ups nobody owns, an open incident gone quiet; archiving resolved
    # incidents' channels (off unless set).
    nudge_postmortem_hours: float = Field(default=24, ge=0, le=24 * 365)
    nudge_follow_ups_hours: float = Field(default=24, ge=0, le=24 * 365)
    nudge_inactive_days: float = Field(default=3, ge=0, le=365)
    archive_after_days: float = Field(default=0, ge=0, le=3650)
    # JSON list of {"url", "secret", "events": [...], "include_private": false}: systems that
    # follow incidents, each sent a signed JSON event through the outbox.
    outgoing_webhooks: Annotated[list[OutgoingWebhook], NoDecode] = Field(default_factory=list)

    @field_validator(
        "slack_signing_secret",
        "slack_app_token",
        "alert_webhook_token",
        "announcements_channel",
        "alerts_channel",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        """`NAME=` in the environment or `.env` leaves the setting unset."""
        return None if v == "" else v

    @field_validator("reminder_interval_minutes")
    @classmethod
    def _reminder_interval(cls, v: float) -> float:
        return REMINDER_MINUTES.check(v)

    @field_validator("timeline_emoji")
    @classmethod
    def _emoji(cls, v: str) -> str:
        return v.strip(":")

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        # slack_sdk joins method names onto the base URL, so it must end with '/'.
        return v if v.endswith("/") else v + "/"

    @field_validator("severities", "extra_roles", "alert_rules", "outgoing_webhooks", mode="before")
    @classmethod
    def _json_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return json.loads(v)
            except json.JSONDecodeError as e:
                raise ValueError(f"must be a JSON list ({e.msg})") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        names = [s.name.upper() for s in self.severities]
        if not names:
            raise ValueError("SEVERITIES must list at least one level")
        if len(set(names)) != len(names):
            raise ValueError("SEVERITIES has the same name twice")
        for s in self.severities:
            s.name = s.name.upper()
        if self.default_severity is None:
            # A typed declaration without a level is usually not the worst case;
            # the third level (or the last, for shorter lists) is a sober start.
            self.default_severity = self.severities[min(2, len(self.severities) - 1)].name
        elif self.default_severity.upper() not in names:
            raise ValueError(f"DEFAULT_SEVERITY must be one of {', '.join(names)}")
        self.default_severity = self.default_severity.upper()
        roles = [r.name for r in self.roles]
        if len(set(roles)) != len(roles):
            raise ValueError("EXTRA_ROLES repeats a role (commander and comms always exist)")
        self._no_shadow_roles()
        for rule in self.alert_rules:
            if rule.severity is not None:
                if rule.severity.upper() not in names:
                    raise ValueError(f"ALERT_RULES: severity must be one of {', '.join(names)}")
                rule.severity = rule.severity.upper()
        return self

    def _no_shadow_roles(self) -> None:
        """An extra role must not be commander or comms under another spelling or label:
        `/incident role communications @bob` would reach one and the card show the other."""
        taken = {role_spelling(alias): role for alias, role in ROLE_ALIASES.items()}
        taken.update({role_spelling(r.name): r.name for r in BUILTIN_ROLES})
        labels = {r.label.strip().lower(): r.name for r in BUILTIN_ROLES}
        for extra in self.extra_roles:
            same = taken.get(role_spelling(extra.name)) or labels.get(extra.label.strip().lower())
            if same is not None:
                raise ValueError(
                    f"EXTRA_ROLES names `{extra.name}` ({extra.label}), which is {same}: "
                    "commander and comms always exist; give extra roles other names"
                )

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def roles(self) -> list[Role]:
        return [*BUILTIN_ROLES, *self.extra_roles]

    def severity(self, name: str) -> Severity | None:
        name = name.strip().upper()
        return next((s for s in self.severities if s.name == name), None)

    def secrets(self) -> list[str]:
        """Every secret value, so logging can make sure none is ever written."""
        values: list[Secret[str] | SecretStr | None] = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.alert_webhook_token,
            *(hook.secret for hook in self.outgoing_webhooks),
        ]
        return [v.get_secret_value() for v in values if v is not None]


# What each setting expects, for start-up errors a person can act on.
HINTS = {
    "slack_bot_token": "the bot token (xoxb-…) from OAuth & Permissions",
    "slack_signing_secret": "the signing secret from Basic Information",
    "slack_app_token": "an app-level token (xapp-…) with connections:write",
    "slack_api_url": "the Web API base URL, https://slack.com/api/",
    "slack_pacing": "true or false",
    "database_url": "a SQLAlchemy URL such as sqlite:///incident-bot.db or postgresql://…",
    "database_timeout_seconds": "a number of seconds from 1 to 60, e.g. 5",
    "port": "a TCP port number, 1-65535",
    "incident_channel_prefix": "a short channel-name prefix such as inc",
    "announcements_channel": "a channel ID such as C0123ABCD (not a #name)",
    "reminder_interval_minutes": "a number of minutes, e.g. 30 or 7.5",
    "severities": 'a JSON list such as [{"name": "SEV1", "label": "Critical"}]',
    "default_severity": "one of the severity names",
    "extra_roles": 'a JSON list such as [{"name": "scribe", "label": "Scribe"}]',
    "timeline_emoji": "an emoji name such as pushpin",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "alert_webhook_token": "a random string of at least 16 characters",
    "alert_rules": 'a JSON list such as [{"match": {"service": "checkout"}, "severity": "SEV1"}]',
    "alerts_channel": "a channel ID such as C0123ABCD (not a #name)",
    "nudge_postmortem_hours": "a number of hours, 0 to turn it off",
    "nudge_follow_ups_hours": "a number of hours, 0 to turn it off",
    "nudge_inactive_days": "a number of days, 0 to turn it off",
    "archive_after_days": "a number of days, 0 (the default) to never archive",
    "outgoing_webhooks": (
        'a JSON list such as [{"url": "https://…", "secret": "at least 16 characters", '
        '"events": ["declared", "resolved"], "include_private": false}]'
    ),
}


class SettingsError(Exception):
    """Start-up cannot go on; each line names a setting and what it expects."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def describe(error: ValidationError) -> list[str]:
    """One line per bad setting, never echoing the value (it may be a secret)."""
    lines: list[str] = []
    seen: set[str] = set()
    for err in error.errors(include_input=False, include_url=False):
        field = str(err["loc"][0]) if err["loc"] else ""
        if field in seen:
            continue
        seen.add(field)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if len(err["loc"]) > 1:  # within a JSON setting: say where, e.g. [0].invite[2]
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"][1:])
            msg = f"{where.removeprefix('.')}: {msg}"
        if not field:
            lines.append(f"settings: {msg}")
            continue
        name = field.upper()
        hint = HINTS.get(field, "")
        if err["type"] == "missing":
            lines.append(f"{name} is not set: expected {hint}")
        else:
            lines.append(f"{name} is invalid ({msg}): expected {hint}")
    return lines


def load_settings(*, http: bool | None = None, **overrides: Any) -> Settings:
    """Read and check settings; raises SettingsError with one line per problem."""
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        raise SettingsError(describe(e)) from None
    if http is None:
        http = not settings.socket_mode
    if http and settings.slack_signing_secret is None:
        raise SettingsError(
            [
                "SLACK_SIGNING_SECRET is not set: expected "
                + HINTS["slack_signing_secret"]
                + " (needed over HTTP; set SLACK_APP_TOKEN for Socket Mode instead)"
            ]
        )
    return settings
