"""Every setting of Paperfeed, read from the environment in one place.

``Settings.from_env(os.environ)`` builds a frozen, typed object and fails at start-up with a
precise message when a value is malformed. Tests pass a plain dict instead of ``os.environ``.
The README's settings table lists the same variables with the same defaults.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class SettingsError(ValueError):
    """A setting in the environment has a value Paperfeed cannot use."""


def _env_field(env: str, default: Any, doc: str, parse: Callable[[str], Any] | None = None) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc, "parse": parse})


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (1/0, true/false), got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Typed settings; each field names its environment variable in its metadata."""

    redis_url: str | None = _env_field(
        "REDIS_URL", None, "Redis to use. Unset: `paperfeed up` starts an embedded Redis server."
    )
    queue_redis_url: str | None = _env_field(
        "PAPERFEED_QUEUE_REDIS_URL", None, "Redis for the job queue (default: `REDIS_URL`)."
    )
    data_dir: str = _env_field(
        "PAPERFEED_DATA_DIR", "./data", "Where the embedded Redis keeps its AOF and model files."
    )
    redis_appendfsync: str = _env_field(
        "PAPERFEED_REDIS_APPENDFSYNC",
        "always",
        "The embedded Redis's AOF fsync: `always` (an acknowledged event survives any crash) or "
        "`everysec` (faster; a crash can lose the last 1-2 s of acknowledged events).",
    )
    key_prefix: str = _env_field(
        "PAPERFEED_KEY_PREFIX", "pf", "Prefix of every Redis key Paperfeed writes."
    )
    stream_partitions: int = _env_field(
        "PAPERFEED_STREAM_PARTITIONS", 1, "Event-log streams (raise on a Redis Cluster)."
    )
    retention_days: float = _env_field(
        "PAPERFEED_RETENTION_DAYS", 180.0, "Events older than this are trimmed from the log."
    )
    max_clock_skew_s: float = _env_field(
        "PAPERFEED_MAX_CLOCK_SKEW_S", 300.0, "How far in the future a client timestamp may be."
    )
    trending_half_life_h: float = _env_field(
        "PAPERFEED_TRENDING_HALF_LIFE_H", 48.0, "Half-life of the global trending score, hours."
    )
    trending_day_half_life_h: float = _env_field(
        "PAPERFEED_TRENDING_DAY_HALF_LIFE_H", 12.0, 'Half-life of the "today" trending view, hours.'
    )
    trending_week_half_life_h: float = _env_field(
        "PAPERFEED_TRENDING_WEEK_HALF_LIFE_H",
        168.0,
        'Half-life of the "this week" trending view, hours.',
    )
    trending_view_ttl_s: float = _env_field(
        "PAPERFEED_TRENDING_VIEW_TTL_S",
        60.0,
        'How long the page\'s "today" and "this week" rankings are reused, seconds.',
    )
    coread_half_life_h: float = _env_field(
        "PAPERFEED_COREAD_HALF_LIFE_H",
        48.0,
        'Half-life of a recent read in the co-reading table of "trending for you", hours.',
    )
    coread_refresh_s: float = _env_field(
        "PAPERFEED_COREAD_REFRESH_S",
        300.0,
        "How often the worker rebuilds the co-reading table, seconds.",
    )
    max_body_bytes: int = _env_field(
        "PAPERFEED_MAX_BODY_BYTES", 1_048_576, "Largest request body accepted (413 above)."
    )
    max_batch: int = _env_field("PAPERFEED_MAX_BATCH", 500, "Most events in one POST /v1/events.")
    admin_token: str | None = _env_field(
        "PAPERFEED_ADMIN_TOKEN", None, "Bearer token of the admin API (unset: admin API off)."
    )
    cors_origins: tuple[str, ...] = _env_field(
        "PAPERFEED_CORS_ORIGINS",
        (r"chrome-extension://[a-p]{32}", r"moz-extension://[0-9a-f-]{36}"),
        "Origins (regular expressions, comma-separated) allowed by CORS.",
        _csv,
    )
    redis_timeout_s: float = _env_field(
        "PAPERFEED_REDIS_TIMEOUT_S", 2.0, "Socket timeout of every Redis call, seconds."
    )
    retry_after_s: int = _env_field(
        "PAPERFEED_RETRY_AFTER_S",
        5,
        "`Retry-After` sent with a 503 while Redis is unreachable or refuses writes.",
    )
    port: int = _env_field("PORT", 8000, "Port of the web server.")
    host: str = _env_field("PAPERFEED_HOST", "127.0.0.1", "Address the web server binds.")
    web_concurrency: int = _env_field("WEB_CONCURRENCY", 2, "gunicorn worker processes.")
    log_level: str = _env_field("PAPERFEED_LOG_LEVEL", "INFO", "Log level of every process.")
    rate_limit_enabled: bool = _env_field(
        "PAPERFEED_RATE_LIMITS", True, "Rate limiting on (flask-limiter, Redis storage).", _bool
    )
    rate_limit_register: str = _env_field(
        "PAPERFEED_RATE_LIMIT_REGISTER", "30 per hour", "Registrations per client address."
    )
    rate_limit_events: str = _env_field(
        "PAPERFEED_RATE_LIMIT_EVENTS", "120 per minute", "POST /v1/events per user token."
    )
    rate_limit_reads: str = _env_field(
        "PAPERFEED_RATE_LIMIT_READS",
        "120 per minute",
        "Recommendations, history and export per user token.",
    )
    rate_limit_per_address: str = _env_field(
        "PAPERFEED_RATE_LIMIT_PER_ADDRESS",
        "3000 per minute",
        "Any limited endpoint per client address (users behind one NAT share it).",
    )
    model_keep_versions: int = _env_field(
        "PAPERFEED_MODEL_KEEP_VERSIONS", 5, "Model versions kept in Redis (older ones deleted)."
    )
    holdout_days: float = _env_field(
        "PAPERFEED_HOLDOUT_DAYS", 1.0, "Most recent slice of events held out to evaluate a model."
    )
    quality_margin: float = _env_field(
        "PAPERFEED_QUALITY_MARGIN",
        0.1,
        "A model this fraction worse (recall@20) than the active one stays inactive.",
    )
    nightly_cron: str = _env_field(
        "PAPERFEED_NIGHTLY_CRON", "0 3 * * *", "When `paperfeed clock` retrains (cron, UTC)."
    )
    train_lock_ttl_s: int = _env_field(
        "PAPERFEED_TRAIN_LOCK_TTL_S", 120, "Expiry of the training lock (renewed while running)."
    )
    train_timeout_s: int = _env_field(
        "PAPERFEED_TRAIN_TIMEOUT_S", 4 * 3600, "Longest a training job may run on a worker."
    )
    als_factors: int = _env_field("PAPERFEED_ALS_FACTORS", 64, "ALS latent factors.")
    als_iterations: int = _env_field("PAPERFEED_ALS_ITERATIONS", 15, "ALS iterations.")
    als_regularization: float = _env_field(
        "PAPERFEED_ALS_REGULARIZATION", 0.05, "ALS L2 regularisation."
    )
    model_poll_s: float = _env_field(
        "PAPERFEED_MODEL_POLL_S", 1.0, "How often web workers check for a newly activated model."
    )
    trending_reuse_s: float = _env_field(
        "PAPERFEED_TRENDING_REUSE_S",
        1.0,
        "How long a web process reuses the trending list it blends into recommendations, "
        "seconds (0: read it for every request).",
    )
    fresh_items_refresh_s: float = _env_field(
        "PAPERFEED_FRESH_ITEMS_REFRESH_S",
        600.0,
        "How often vectors of papers first seen after training are recomputed.",
    )
    personal_scan_fraction: float = _env_field(
        "PAPERFEED_PERSONAL_SCAN_FRACTION",
        0.1,
        "Share of papers scored to find a user's ALS candidates in models of 50,000+ papers "
        "(an inverted-file index); 1 scans every paper.",
    )
    smtp_host: str | None = _env_field(
        "PAPERFEED_SMTP_HOST", None, "SMTP server of the daily email (unset: email off)."
    )
    smtp_port: int = _env_field("PAPERFEED_SMTP_PORT", 587, "Port of the SMTP server.")
    smtp_security: str = _env_field(
        "PAPERFEED_SMTP_SECURITY",
        "starttls",
        "`starttls`, `tls` (implicit TLS, port 465) or `none` (a local relay only).",
    )
    smtp_user: str | None = _env_field(
        "PAPERFEED_SMTP_USER", None, "SMTP login (unset: no authentication)."
    )
    smtp_password: str | None = _env_field(
        "PAPERFEED_SMTP_PASSWORD", None, "SMTP password (with `PAPERFEED_SMTP_USER`)."
    )
    smtp_timeout_s: float = _env_field(
        "PAPERFEED_SMTP_TIMEOUT_S", 30.0, "Socket timeout of the SMTP connection, seconds."
    )
    email_sender: str = _env_field(
        "PAPERFEED_EMAIL_FROM",
        "Paperfeed <paperfeed@localhost>",
        "From address of every email Paperfeed sends.",
    )
    public_url: str = _env_field(
        "PAPERFEED_PUBLIC_URL",
        "http://127.0.0.1:8000",
        "Public address of this server, for links in emails (confirm, unsubscribe).",
    )
    digest_size: int = _env_field("PAPERFEED_DIGEST_SIZE", 10, "Papers in one daily email (1..50).")
    digest_resend_days: float = _env_field(
        "PAPERFEED_DIGEST_RESEND_DAYS",
        14.0,
        "A paper emailed to a subscriber is left out of their emails for this many days.",
    )
    email_confirm_ttl_h: float = _env_field(
        "PAPERFEED_EMAIL_CONFIRM_TTL_H", 48.0, "Lifetime of an email confirmation link, hours."
    )
    secret_key: str | None = _env_field(
        "PAPERFEED_SECRET_KEY",
        None,
        "Signs email confirmation and unsubscribe links (32+ characters; required for email).",
    )

    def __post_init__(self) -> None:
        checks = [
            (
                self.redis_appendfsync in ("always", "everysec"),
                "PAPERFEED_REDIS_APPENDFSYNC must be always or everysec",
            ),
            (self.stream_partitions >= 1, "PAPERFEED_STREAM_PARTITIONS must be >= 1"),
            (self.retention_days > 0, "PAPERFEED_RETENTION_DAYS must be > 0"),
            (self.max_clock_skew_s >= 0, "PAPERFEED_MAX_CLOCK_SKEW_S must be >= 0"),
            (self.trending_half_life_h > 0, "PAPERFEED_TRENDING_HALF_LIFE_H must be > 0"),
            (
                0 < self.trending_day_half_life_h < self.trending_week_half_life_h,
                "trending half-lives must satisfy 0 < DAY < WEEK",
            ),
            (self.trending_view_ttl_s >= 0, "PAPERFEED_TRENDING_VIEW_TTL_S must be >= 0"),
            (self.trending_reuse_s >= 0, "PAPERFEED_TRENDING_REUSE_S must be >= 0"),
            (self.coread_half_life_h > 0, "PAPERFEED_COREAD_HALF_LIFE_H must be > 0"),
            (self.coread_refresh_s >= 10, "PAPERFEED_COREAD_REFRESH_S must be >= 10"),
            (self.max_body_bytes >= 1024, "PAPERFEED_MAX_BODY_BYTES must be >= 1024"),
            (1 <= self.max_batch <= 10_000, "PAPERFEED_MAX_BATCH must be in 1..10000"),
            (self.redis_timeout_s > 0, "PAPERFEED_REDIS_TIMEOUT_S must be > 0"),
            (self.retry_after_s >= 1, "PAPERFEED_RETRY_AFTER_S must be >= 1"),
            (0 < self.port < 65536, "PORT must be in 1..65535"),
            (self.web_concurrency >= 1, "WEB_CONCURRENCY must be >= 1"),
            (
                0 < self.personal_scan_fraction <= 1,
                "PAPERFEED_PERSONAL_SCAN_FRACTION must be in (0, 1]",
            ),
            (
                bool(self.key_prefix) and "{" not in self.key_prefix and "}" not in self.key_prefix,
                "PAPERFEED_KEY_PREFIX must be non-empty and hold no hash-tag braces",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)

    @property
    def retention_s(self) -> float:
        return self.retention_days * 86400.0

    @property
    def trending_half_life_s(self) -> float:
        return self.trending_half_life_h * 3600.0

    @property
    def trending_windows(self) -> dict[str, float]:
        """Trending window -> half-life in seconds. The first, ``main``, is the sorted set every
        reader updates (recommendations read it); the others are the public page's views, kept
        in each paper's entry and ranked when read (:mod:`recommender.store`)."""
        return {
            "main": self.trending_half_life_h * 3600.0,
            "day": self.trending_day_half_life_h * 3600.0,
            "week": self.trending_week_half_life_h * 3600.0,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); ``overrides`` win over both."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata["env"]
            if name not in env:
                continue
            raw = env[name]
            parse = f.metadata["parse"] or _parser_for(f)
            try:
                values[f.name] = parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{name}={raw!r}: {exc}") from None
        values.update(overrides)
        return cls(**values)

    @classmethod
    def table(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) for every setting: the README's table is built from it."""
        rows = []
        for f in dataclasses.fields(cls):
            default = f.default
            shown = ",".join(default) if isinstance(default, tuple) else default
            rows.append((f.metadata["env"], "" if shown is None else str(shown), f.metadata["doc"]))
        return rows


def _parser_for(f: dataclasses.Field) -> Callable[[str], Any]:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind.startswith("int"):
        return int
    if kind.startswith("float"):
        return float
    if kind.startswith("bool"):
        return _bool
    if "None" in kind:
        return lambda v: v or None
    return str
