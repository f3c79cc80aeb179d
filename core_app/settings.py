"""The settings of the case service, read from the environment (prefix KNTC_).

Two classes, one a part of the other: `OperatorSettings` is what the operator commands (`kntc`)
read, every DSN optional because each host holds only the ones its commands use (the migrating
host the owner's, a backup host a read-only one); `Settings` is the server's, which adds what it
cannot start without.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The environment variable of each setting is this prefix and the field's name in capitals.
ENV_PREFIX = "KNTC_"


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=None, extra="ignore")

    # The owner role (kntc_owner): migrations, seeding, imports and the support commands.
    admin_database_url: str | None = None
    # The application role (kntc_app): row-level security applies to it.
    database_url: str | None = None
    # The read-only role (kntc_readonly): the audit commands (a backup host may give it as
    # KNTC_DATABASE_URL, its only DSN).
    readonly_database_url: str | None = None
    # A session unused this long is closed, for the API and the web pages alike (tests use seconds).
    # The database ends a session idle longer than kntc.session_idle_ceiling() (1800 s) whatever this says.
    idle_seconds: int = Field(default=1800, ge=1, le=1800)
    # Every wait is bounded (milliseconds): a statement, a lock, a transaction left open by a request.
    statement_timeout_ms: int = Field(default=15_000, ge=100)
    lock_timeout_ms: int = Field(default=5_000, ge=100)
    idle_in_transaction_timeout_ms: int = Field(default=30_000, ge=100)
    # What stands between the application (and login) role and PostgreSQL: "direct" (HAProxy only),
    # or "pgbouncer" in transaction mode, which rules out server-side prepared statements and
    # startup options (core_app.waits.app_connection).
    database_pooler: Literal["direct", "pgbouncer"] = "direct"
    # The secret that seals what the database keeps but must not read (second factors; `kntc
    # accounts reseal` needs it), and earlier secrets still accepted to open what they sealed while a
    # rotation is under way (KNTC_PREVIOUS_SECRET_KEYS='["…"]'; core_app.sealing).
    secret_key: str | None = None
    previous_secret_keys: list[str] = Field(default_factory=list)

    @property
    def sealing_keys(self) -> tuple[str, ...]:
        """The ring: the current secret seals, every one opens."""
        return tuple(k for k in (self.secret_key, *self.previous_secret_keys) if k)


class Settings(OperatorSettings):
    # The application role (kntc_app): the server cannot start without it.
    database_url: str = Field(description="libpq DSN of the application role")
    # The login role (kntc_auth): only the login path uses it, through a pool of its own. It alone may
    # open a session and read a password hash; the application role's password does neither.
    auth_database_url: str = Field(description="libpq DSN of the login role (kntc_auth)")
    secret_key: str = Field(min_length=32, description="random secret for signing (generated at provision time)")
    environment: str = "production"
    session_hours: int = 10
    pool_min: int = 2
    pool_max: int = 16
    # How long a request waits for a pooled connection before it is refused (seconds).
    pool_timeout_s: float = Field(default=10, gt=0)
    # A second-round complaint or a remote area lengthens the limits; the area flag comes from data.
    default_language: str = "vi"
    # Peers whose X-Real-IP names the client (addresses or networks): the site's nginx, which sets
    # the header itself. Anyone else's header is ignored.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    # A periodic report's statement timeout (milliseconds): the country's reads every table it counts
    # (runbooks/reports.md, "Measured"); an officer runs one at a time.
    report_statement_timeout_ms: int = Field(default=120_000, ge=1_000, le=600_000)
    # The Unicode TrueType font the periodic reports' PDF embeds (Debian's fonts-dejavu-core).
    report_font_dir: str = "/usr/share/fonts/truetype/dejavu"

    # Citizens' notifications and the SMS lookup (core_app/notify, runbooks/sms-gateway.md). A channel
    # works when its settings are given; `kntc notify deliver` sends only the channels it has.
    # The provider's HTTP gateway (the simulator's URL in the lab) and the key it issued (Bearer).
    notify_sms_gateway_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    notify_sms_api_key: str | None = Field(default=None, min_length=16)
    # The registered brandname messages come from (at most 11 characters, as carriers register them).
    notify_sms_brandname: str = Field(default="TTCP", pattern=r"^[A-Za-z0-9 ._-]{2,11}$")
    # The key the gateway signs its callbacks with (delivery reports, the citizen's lookup): shared
    # with the provider, generated at provision time. Without it the callbacks answer 404.
    notify_sms_callback_key: str | None = Field(default=None, min_length=32)
    # The service number citizens text "KNTC <case code> <lookup secret>" to, named in the messages.
    notify_sms_service_number: str | None = Field(default=None, pattern=r"^[0-9+]{3,15}$")
    # The public lookup page, named in the e-mails.
    notify_lookup_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    notify_smtp_host: str | None = None
    notify_smtp_port: int = Field(default=587, ge=1, le=65535)
    # STARTTLS required (the relay's certificate checked against the system's CAs, or this file).
    notify_smtp_starttls: bool = True
    notify_smtp_cafile: str | None = None
    notify_smtp_username: str | None = None
    notify_smtp_password: str | None = None
    notify_mail_from: str | None = Field(default=None, pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    # Attempts of one message before it is given up (30 s, 60 s, … at most an hour apart).
    notify_max_attempts: int = Field(default=10, ge=1, le=50)

    @field_validator("secret_key")
    @classmethod
    def refuse_placeholder(cls, v: str) -> str:
        if "changethis" in v:
            raise ValueError("KNTC_SECRET_KEY is a placeholder: generate one (openssl rand -hex 32)")
        return v


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]
