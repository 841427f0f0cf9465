"""Settings (``service.config``): each has a range, and a value outside it is refused when
the settings are read, naming the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hypersweep.service.config import Settings

BAD: list[tuple[str, str, str]] = [
    ("HYPERSWEEP_TOKEN", "", "the token is empty"),
    ("HYPERSWEEP_TOKEN", "two words", "visible ASCII"),
    ("HYPERSWEEP_TOKEN", "jetons-été", "visible ASCII"),
    ("HYPERSWEEP_WORKER_TOKEN", "", "the token is empty"),
    ("HYPERSWEEP_LEASE_SECONDS", "inf", "finite"),
    ("HYPERSWEEP_LEASE_SECONDS", "nan", "finite"),
    ("HYPERSWEEP_LEASE_SECONDS", "1e12", "less than or equal to 604800"),
    ("HYPERSWEEP_LEASE_SECONDS", "0", "greater than or equal to 1"),
    ("HYPERSWEEP_LEASE_SECONDS", "-5", "greater than or equal to 1"),
    ("HYPERSWEEP_LEASE_SECONDS", "soon", "valid number"),
    ("HYPERSWEEP_REAPER_INTERVAL", "0", "greater than or equal to 0.01"),
    ("HYPERSWEEP_REAPER_INTERVAL", "-1", "greater than or equal to 0.01"),
    ("HYPERSWEEP_REAPER_INTERVAL", "inf", "finite"),
    ("HYPERSWEEP_MAX_BODY_BYTES", "0", "greater than or equal to 256"),
    ("HYPERSWEEP_MAX_BODY_BYTES", str(2**70), "less than or equal to 1073741824"),
    ("HYPERSWEEP_DATABASE_URL", "", "not a database URL"),
    ("HYPERSWEEP_DATABASE_URL", "mysql://db/x", "not mysql"),
]


@pytest.mark.parametrize(("name", "value", "words"), BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_a_setting_outside_its_range_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    if name == "HYPERSWEEP_WORKER_TOKEN":
        monkeypatch.setenv("HYPERSWEEP_TOKEN", "user-token")
    with pytest.raises(ValidationError) as refused:
        Settings()
    [error] = refused.value.errors()
    assert "_".join(map(str, error["loc"])).upper() == name.removeprefix("HYPERSWEEP_")
    assert words in error["msg"]
    if name.endswith("TOKEN") and value:
        assert value not in str(error["msg"])  # a token is never repeated back


def test_settings_inside_their_ranges_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "HYPERSWEEP_TOKEN": "s3cret-Token_1!",
        "HYPERSWEEP_WORKER_TOKEN": "w0rker",
        "HYPERSWEEP_LEASE_SECONDS": "1",
        "HYPERSWEEP_REAPER_INTERVAL": "0.05",
        "HYPERSWEEP_MAX_BODY_BYTES": "1000",
        "HYPERSWEEP_DATABASE_URL": "postgresql+psycopg://u@h/db",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.lease_seconds, settings.reaper_seconds(), settings.max_body_bytes) == (1.0, 0.05, 1000)
    assert settings.token is not None and settings.token.get_secret_value() == "s3cret-Token_1!"


def test_an_unset_token_is_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYPERSWEEP_TOKEN", raising=False)
    assert Settings().token is None
