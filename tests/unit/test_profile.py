"""Target profiles: shipped files load, overrides win, every bad input is a clear UsageError."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from conformance.errors import UsageError
from conformance.sip import message
from conformance.targets import make_target
from conformance.targets.external import ExternalTarget, parse_spec, parse_target
from conformance.targets.kamailio import render_config
from conformance.targets.probe import is_answer, options_request
from conformance.targets.profile import SHIPPED, Profile, load_profile, profile_from_dict


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.source == name
    assert profile.description


def test_kamailio_profile_records_observed_behaviour() -> None:
    p = load_profile("kamailio")
    assert (p.flavour, p.first_version, p.empty_form) == ("kamailio", 1, "no-body")
    assert p.claims_presence_dialoginfo
    assert p.replaces_on_same_first_id
    assert not p.partial_on_publish
    assert p.expiry_timer == 2.0 and p.timestamp_resolution == 1.0
    c07 = p.deviations_for(
        "test_publish_wrong_content_type_is_rejected",
        "test_publish_wrong_content_type_is_rejected[text/plain]",
    )
    assert [d.requirement for d in c07] == ["C07", "C07"]  # one kind, one aggregate-mode view
    assert all(d.observed and d.reason for d in c07)


def test_opensips_and_reference_differ_where_behaviour_md_says() -> None:
    o, r = load_profile("opensips"), load_profile("reference")
    assert (o.first_version, o.partial_on_publish, o.empty_form, o.flavour) == (
        0,
        True,
        "empty-document",
        "opensips",
    )
    assert o.settle_time > 0
    assert r.first_version == 0 and not r.deviations and not r.partial_on_publish


def test_user_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        'description = "my server"\nfirst_version = 1\nsettle_time = 0.25\n'
        '[deviations."test_x"]\nC07 = { reason = "no content-type check", observed = "200" }\n'
    )
    p = load_profile(str(path))
    assert p.name == "mine"  # the file stem when the file names none
    assert p.first_version == 1 and p.settle_time == 0.25
    (c07,) = p.deviations_for("test_x")
    assert (c07.requirement, c07.reason, c07.observed) == ("C07", "no content-type check", "200")
    assert p.deviations_for("test_y") == ()
    assert p.rfc == 6665  # unset fields keep the RFC defaults


def test_overrides_beat_the_profile_and_none_is_ignored() -> None:
    p = load_profile("kamailio")
    q = p.with_overrides(single_dialog=True, rfc=3265, settle_time=None)
    assert q.single_dialog and q.rfc == 3265 and q.settle_time == p.settle_time
    assert not p.single_dialog  # the original is untouched
    assert p.with_overrides() is p


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"rfc": 2543}, "rfc = 2543"),
        ({"single_dialog": "yes"}, "true or false"),
        ({"first_version": True}, "first_version = True"),
        ({"tie_break": "last"}, "unknown key 'tie_break'"),  # the flavour decides ties
        ({"nonsense": 1}, "unknown key 'nonsense'"),
    ],
)
def test_bad_overrides_are_usage_errors(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(")):
        load_profile("generic").with_overrides(**kw)


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("first_versoin = 1", "unknown key 'first_versoin'"),
        ('empty_form = "nothing"', "empty_form = 'nothing' is not allowed"),
        ('flavour = "asterisk"', "'opensips', 'kamailio'"),
        ("settle_time = -1", "0 to 3600"),
        ("settle_time = nan", "0 to 3600"),
        ('settle_time = "1s"', "number of seconds"),
        ("publish_expires_cap = 1.5", "whole number"),
        ("deviations = 3", "table of case ids"),
        ('[deviations]\ntest_x = "C07"', "table of requirement ids"),
        ('[deviations.test_x]\nZ99 = { reason = "why", observed = "x" }', "unknown requirement"),
        ('[deviations.test_x]\nC07 = "why"', "old format"),
        ('[deviations.test_x]\nC07 = { reason = "", observed = "x" }', "one-line string"),
        ('[deviations.test_x]\nC07 = { reason = "a\\nb", observed = "x" }', "one-line string"),
        ('[deviations.test_x]\nC07 = { reason = "why" }', "exactly one of observed"),
        (
            '[deviations.test_x]\nC07 = { reason = "w", observed = "a", observed_re = "a" }',
            "exactly one of observed",
        ),
        ('[deviations.test_x]\nC07 = { reason = "why", observed_re = "2.*" }', "only an exact"),
        ('[deviations."*"]\nA19 = { reason = "why", observed_re = ".*" }', "only an exact"),
        ('[deviations.test_x]\nA03 = { reason = "why", observed_re = "(" }', "not a regular"),
        ('[deviations.test_x]\nA03 = { reason = "w", observed = "x", why = 1 }', "unknown key"),
        (
            'claims_presence_dialoginfo = true\n[deviations.t]\nD09 = { reason = "w", '
            'observed_re = ".*" }',
            "only an exact",
        ),
        ("first_version = ", "not valid TOML"),
    ],
)
def test_bad_files_name_the_key_and_what_is_allowed(
    tmp_path: Path, toml: str, fragment: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml + "\n")
    with pytest.raises(UsageError) as info:
        load_profile(path)
    assert fragment in str(info.value)
    assert "bad.toml" in str(info.value)


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_profile(tmp_path / "nope.toml")
    with pytest.raises(UsageError, match=r"unknown profile 'asterisk'.*kamailio"):
        load_profile("asterisk")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b'description = "J\xfcrgen"\n')
    with pytest.raises(UsageError, match="not UTF-8"):
        load_profile(path)


def test_profile_is_frozen_and_pickles() -> None:
    p = load_profile("kamailio")
    with pytest.raises(AttributeError):
        p.first_version = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.deviations["x"] = ()  # type: ignore[index]
    assert pickle.loads(pickle.dumps(p)) == p
    case = "test_publish_wrong_content_type_is_rejected[text/plain]"
    c07 = p.to_dict()["deviations"][case]["C07"]
    assert {"reason", "observed"} <= set(c07[0]) and {c.get("mode") for c in c07[1:]} == {
        "aggregate",
        "single",
    }


def test_defaults_are_rfc_strict() -> None:
    p = profile_from_dict({})
    assert p == Profile(source="")
    assert p.first_version == 0 and p.empty_form == "empty-document" and not p.deviations
    assert p.flavour == "strict"  # was Kamailio's
    assert not (p.replaces_on_same_first_id or p.partial_on_publish)
    assert not p.claims_presence_dialoginfo
    assert p.wildcard_deviations() == ()


def test_pattern_allowed_below_must_and_fact_deviation_is_exact() -> None:
    p = profile_from_dict(
        {"first_version": 1, "deviations": {"*": {"A03": {"reason": "r", "observed_re": "x.*"}}}}
    )
    a03, a07 = p.wildcard_deviations()
    assert a03.observed_re == "x.*"
    assert (a07.requirement, a07.observed, a07.fact) == ("A07", "first version 1", "first_version")


def test_several_observations_for_one_id() -> None:
    p = profile_from_dict(
        {
            "deviations": {
                "test_x": {
                    "C16": [{"reason": "a", "observed": "one"}, {"reason": "b", "observed": "two"}]
                }
            }
        }
    )
    assert [d.observed for d in p.deviations_for("test_x")] == ["one", "two"]
    assert pickle.loads(pickle.dumps(p)) == p


# --- target specs (pure parts) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("sip:127.0.0.1:5070", ("127.0.0.1", 5070, None)),
        ("sip:127.0.0.1", ("127.0.0.1", 5060, None)),
        ("sip:[::1]:5080", ("::1", 5080, None)),
        ("sip:pbx.example.com:5060;domain=example.com", ("pbx.example.com", 5060, "example.com")),
        ("sip:10.0.0.1:5060;transport=udp", ("10.0.0.1", 5060, None)),
    ],
)
def test_parse_spec(spec: str, expected: tuple[str, int, str | None]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "127.0.0.1:5060",
        "sip:",
        "sip:host:99999",
        "sips:host:5061;transport=tcp",
        "sip:h:5060;transport=tls",
        "sip:h:5060;transport=sctp",
        "sip:a b",
    ],
)
def test_bad_spec_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError, match="bad target"):
        parse_spec(spec)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("sip:h:5070;transport=tcp", ("h", 5070, None, "tcp")),
        ("sip:h;transport=TCP;domain=d", ("h", 5060, "d", "tcp")),
        ("sip:[::1]:5070;transport=udp", ("::1", 5070, None, "udp")),
        ("sips:h", ("h", 5061, None, "tls")),
        ("sips:h:5071;transport=tls", ("h", 5071, None, "tls")),
    ],
)
def test_parse_target_names_the_transport(
    spec: str, expected: tuple[str, int, str | None, str]
) -> None:
    assert parse_target(spec) == expected


def test_tls_and_tcp_targets() -> None:
    assert make_target("sip:127.0.0.1:5999;transport=tcp").transport == "tcp"
    assert make_target("sips:127.0.0.1:5999").transport == "tls"
    with pytest.raises(UsageError, match="takes ;transport=udp, tcp or tls"):
        make_target("kamailio:single;transport=sctp")


def test_make_target_external_applies_overrides() -> None:
    target = make_target("sip:127.0.0.1:5999", overrides={"single_dialog": True, "rfc": None})
    assert isinstance(target, ExternalTarget)
    assert target.profile.name == "generic" and target.profile.single_dialog
    assert target.address == "127.0.0.1:5999"
    assert target.presentity_uri("alice") == "sip:alice@127.0.0.1"
    assert target.describe()["single_dialog"] is True


def test_make_target_rejects_bad_specs() -> None:
    with pytest.raises(UsageError, match="bad target 'opensips'"):
        make_target("opensips")
    with pytest.raises(UsageError, match="mode 'double'"):
        make_target("kamailio:double")
    with pytest.raises(UsageError, match="contradicts"):
        make_target("kamailio:aggregate", overrides={"single_dialog": True})


# --- config rendering and the probe request (pure) -----------------------------------------


def test_render_config_fills_placeholders_and_names_missing_ones() -> None:
    assert render_config("listen=udp:{{host}}:{{port}} $rm @x", {"host": "h", "port": 1}) == (
        "listen=udp:h:1 $rm @x"
    )
    with pytest.raises(UsageError, match="db_path, port"):
        render_config("{{port}} {{db_path}}", {})


def test_options_request_round_trips_and_matches_its_answer() -> None:
    req = options_request(
        "127.0.0.1",
        5060,
        local_host="127.0.0.1",
        local_port=4000,
        call_id="c",
        branch="z9hG4bK1",
        tag="t",
    )
    parsed = message.parse(bytes(req))
    assert parsed == req
    assert req.uri == "sip:127.0.0.1:5060" and req.cseq == (1, "OPTIONS")
    keep = ("Via", "From", "To", "Call-ID", "CSeq")
    answer = message.Response(
        status=200, reason="OK", headers=tuple((n, v) for n, v in req.headers if n in keep)
    )
    assert is_answer(req, answer)
    other = message.Response(status=200, reason="OK", headers=(("Call-ID", "x"),))
    assert not is_answer(req, other)
