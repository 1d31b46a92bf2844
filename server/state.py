"""Per-app state kept in ``app.extensions["paperfeed"]``: settings, Redis client, event store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from recommender.keys import Keys
from recommender.settings import Settings
from recommender.store import EventStore


@dataclass
class AppState:
    settings: Settings
    redis: Any
    keys: Keys
    store: EventStore
    extras: dict[str, Any] = field(default_factory=dict)


def state() -> AppState:
    """The running app's state."""
    return current_app.extensions["paperfeed"]
