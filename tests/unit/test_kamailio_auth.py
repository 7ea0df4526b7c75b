"""The digest part of a launched Kamailio's config (``targets.kamailio.auth_settings``): which
function challenges, so a presence server answers 407 and a registrar 401 (RFC 3261 §22)."""

from __future__ import annotations

from pathlib import Path

from conformance.targets.kamailio import auth_settings


def test_no_accounts_no_authentication() -> None:
    assert auth_settings({}, "r.test", Path("/db")) == {"auth_modules": "", "auth_check": ""}


def test_a_presence_server_challenges_with_407_and_a_registrar_with_401() -> None:
    proxy = auth_settings({"a": "pw"}, "r.test", Path("/db"))["auth_check"]
    www = auth_settings({"a": "pw"}, "r.test", Path("/db"), challenge="www")["auth_check"]
    assert 'proxy_authorize("r.test", "subscriber")' in proxy and "www_" not in proxy
    assert 'www_authorize("r.test", "subscriber")' in www and "proxy_" not in www
    assert 'www_challenge("r.test", "17")' in www  # stale=true on an expired nonce, as A31
