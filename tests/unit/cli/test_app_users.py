"""``jitr app`` before anything reaches AWS: its settings file, and the sentences for what is missing."""

from __future__ import annotations

import json
import stat

import pytest

from cloud.user_pool import Tokens
from user import account as accounts


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    path = tmp_path / "app" / "app.json"
    monkeypatch.setenv(accounts.ENV_APP_CONFIG, str(path))
    return path


def test_commands_before_setup_say_how_to_set_the_app_up(jitr, settings_file):
    result = jitr("app", "devices")
    assert result.exit_code == 2 and "not set up: give --stack STACK" in result.output


def test_setup_keeps_the_settings_private_and_commands_then_ask_for_a_sign_in(jitr, settings_file):
    result = jitr("app", "setup", "--api", "http://127.0.0.1:9/abc", "--client-id", "client", "--region", "eu-west-1")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings_file.parent.stat().st_mode) == 0o700
    assert json.loads(settings_file.read_text())["api"] == "http://127.0.0.1:9/abc"
    result = jitr("app", "bind", "dev-a", "--code", "AAAA")
    assert result.exit_code == 2 and "Nobody is signed in: run 'jitr app login" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api", "http://api.example.com/x", "--client-id", "c", "--region", "r"], "must be an https:// URL"),
        (["--api", "https://api.example.com/x"], "together"),  # no client id, no region
        ([], "Give --stack STACK, or --api URL"),
    ],
)
def test_setup_refuses_what_would_send_tokens_in_clear_or_is_incomplete(jitr, settings_file, args, message):
    result = jitr("app", "setup", *args)
    assert result.exit_code == 2 and message in result.output
    assert not settings_file.exists()


def test_an_expired_id_token_is_renewed_with_the_refresh_token_and_saved(settings_file):
    account = accounts.Account("https://api.example.com", "client", "eu-west-1")
    signed = account.signed_in(Tokens("old-id", "old-access", "refresh", 3600), "ada@example.com", now=0)

    class Pool:
        def refresh(self, refresh_token: str) -> Tokens:
            assert refresh_token == "refresh"
            return Tokens("new-id", "new-access", "refresh", 3600)

    assert accounts.id_token(signed, lambda _a: Pool(), now=lambda: 100) == "old-id"  # still fresh
    assert accounts.id_token(signed, lambda _a: Pool(), now=lambda: 3590) == "new-id"  # within a minute of expiry
    saved = accounts.load()
    assert saved is not None and saved.id_token == "new-id" and saved.expires_at == pytest.approx(3590 + 3600)
