"""Settings from the environment, and the key names' Cluster hash tags."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from recommender.keys import USER_EXTRA_KEYS, Keys
from recommender.settings import Settings, SettingsError


def test_defaults_and_parsing() -> None:
    s = Settings.from_env({"PORT": "9001", "PAPERFEED_RATE_LIMITS": "off", "REDIS_URL": ""})
    assert s.port == 9001
    assert s.rate_limit_enabled is False
    assert s.redis_url is None
    assert s.trending_half_life_h == 48.0
    assert s.retention_s == s.retention_days * 86400
    assert s.redis_appendfsync == "always"
    assert Settings.from_env({"PAPERFEED_REDIS_APPENDFSYNC": "everysec"}).redis_appendfsync == (
        "everysec"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT='eighty'"),
        ({"PORT": "0"}, "PORT must be"),
        ({"PAPERFEED_TRENDING_HALF_LIFE_H": "-1"}, "HALF_LIFE"),
        ({"PAPERFEED_KEY_PREFIX": "pf{x}"}, "hash-tag"),
        ({"PAPERFEED_RATE_LIMITS": "maybe"}, "boolean"),
        ({"PAPERFEED_MAX_BATCH": "0"}, "MAX_BATCH"),
        ({"PAPERFEED_REDIS_APPENDFSYNC": "no"}, "always or everysec"),
    ],
)
def test_bad_values_fail_fast(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("{", r"\{").replace("}", r"\}")):
        Settings.from_env(env)


def test_table_lists_every_variable_once() -> None:
    names = [row[0] for row in Settings.table()]
    assert len(names) == len(set(names))
    assert {"REDIS_URL", "PORT", "PAPERFEED_KEY_PREFIX", "PAPERFEED_ADMIN_TOKEN"} <= set(names)


def test_readme_settings_table_is_current() -> None:
    """The README's table is generated from Settings: `python scripts/settings_table.py --write`."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).parent.parent
    spec = importlib.util.spec_from_file_location(
        "settings_table", root / "scripts/settings_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (root / "README.md").read_text()
    assert module.table() in readme, "run: python scripts/settings_table.py --write"


def test_user_keys_share_one_slot_and_prefix_has_no_tag() -> None:
    keys = Keys("pf", partitions=4)
    user_slots = {key_slot(k.encode()) for k in keys.user_keys("abc")}
    assert len(user_slots) == 1
    assert len({key_slot(keys.user_keys(u)[0].encode()) for u in ("a", "b", "c", "d", "e")}) > 1
    for p in range(4):
        assert key_slot(keys.stream(p).encode()) == key_slot(keys.dedupe(p).encode())
    assert key_slot(keys.trending().encode()) == key_slot(keys.trending_epoch().encode())
    pid = "doi:10.1000/xyz"
    slots = {key_slot(k.encode()) for k in (keys.paper(pid), keys.paper_claims(pid))}
    assert len(slots) == 1
    assert keys.users().startswith("pf:") and "{" not in keys.users()


def test_partition_is_stable_and_spread() -> None:
    keys = Keys("pf", partitions=8)
    ids = [f"user{i}" for i in range(200)]
    assert [keys.partition_of(u) for u in ids] == [keys.partition_of(u) for u in ids]
    assert len({keys.partition_of(u) for u in ids}) == 8


def test_unregistered_user_key_is_refused() -> None:
    keys = Keys("pf")
    for name in USER_EXTRA_KEYS:
        assert keys.user_extra("u1", name) in keys.user_keys("u1")
    with pytest.raises(KeyError):
        keys.user_extra("u1", "secret-stash")
