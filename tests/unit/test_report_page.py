"""report.html: structure (lxml.html), the ladders, the diff, and escaping of hostile input."""

from __future__ import annotations

import re
from typing import Any

import lxml.html
import pytest

from conformance.oracle.requirements import CATALOGUE
from conformance.report import html as H
from conformance.report.results import build_results
from tests.support import report_sample as sample


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_results(*sample.sample_run())


@pytest.fixture(scope="module")
def page(doc: dict[str, Any]) -> Any:
    return lxml.html.document_fromstring(H.render(doc))


def _non_plain(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in doc["cases"] if c["verdict"] not in ("pass", "skipped")]


def test_matrix_has_one_row_per_catalogue_requirement(page: Any, doc: dict[str, Any]) -> None:
    rows = page.xpath('//table[@id="requirements"]/tbody/tr')
    assert len(rows) == len(CATALOGUE)
    assert [r.get("id") for r in rows] == [f"req-{rid}" for rid in CATALOGUE]
    by_id = {r["id"]: r for r in doc["requirements"]}
    for row in rows:
        rid = row.get("id")[4:]
        cells = row.xpath("./td")
        assert cells[0].text_content() == rid
        assert cells[1].text_content() == by_id[rid]["verdict"]
        assert CATALOGUE[rid].ref in cells[3].text_content()


def test_one_ladder_per_case_that_did_not_plainly_pass(page: Any, doc: dict[str, Any]) -> None:
    articles = page.xpath('//section[@id="cases"]/article[@class="case"]')
    expected = _non_plain(doc)
    assert len(expected) == 4
    assert len(articles) == len(expected)
    assert len(page.xpath('//svg[@class="ladder"]')) == len(expected)
    for article in articles:
        assert len(article.xpath('.//svg[@class="ladder"]')) == 1
    titles = [a.xpath(".//h3")[0].text_content() for a in articles]
    assert titles[0].startswith("fail")  # failures first
    for c in expected:
        assert sum(t.endswith(" " + c["nodeid"]) for t in titles) == 1


def test_passed_and_skipped_cases_are_listed_without_ladder(page: Any) -> None:
    assert (
        "test_publish_notifies_watcher" in page.xpath('//section[@id="passed"]')[0].text_content()
    )
    skipped = page.xpath('//section[@id="skipped"]')[0]
    assert "test_multiple_dialogs" in skipped.text_content()
    assert "aggregate mode" in skipped.text_content()
    assert not skipped.xpath(".//svg")


def test_header_summary(page: Any) -> None:
    header = page.xpath("//header")[0].text_content()
    assert "kamailio-single" in header
    assert "127.0.0.1:20005" in header
    assert "kamailio (5.6.3 (x86_64/linux))" in header
    assert "single" in header
    misses = page.xpath('//p[@class="misses"]//a')
    assert {a.text_content() for a in misses} == {"A07", "C02", "D01"}
    assert all(a.get("href") == f"#req-{a.text_content()}" for a in misses)


def test_ladder_arrows_follow_the_flow(page: Any, doc: dict[str, Any]) -> None:
    case = next(c for c in doc["cases"] if c["case"] == "test_two_publications_aggregate")
    article = page.xpath(f'//article[@id="case-{doc["cases"].index(case)}"]')[0]
    svg = article.xpath('.//svg[@class="ladder"]')[0]
    heads = [t.text_content() for t in svg.xpath(".//text[@font-weight]")]
    assert heads == ["publisher", "server (kamailio)", "watcher-1"]
    groups = svg.xpath('.//g[starts-with(@class, "msg ")]')
    assert len(groups) == len(case["messages"]) == 8
    labels = [g.xpath(".//text")[1].text_content() for g in groups]
    assert labels[0].startswith("SUBSCRIBE sip:bob-fail@")
    assert labels[1] == "200 OK"
    assert labels[2].startswith("NOTIFY (v1 full)")
    assert labels[4].startswith("PUBLISH sip:bob-fail@")
    assert labels[6].startswith("NOTIFY (v2 full)")
    times = [g.xpath(".//text")[0].text_content() for g in groups]
    assert times[0] == "+0.000 s" and times[4] == "+0.020 s"
    # the PUBLISH runs publisher -> server (rightwards), its 200 back (leftwards)
    pub, ok = groups[4].xpath(".//line")[0], groups[5].xpath(".//line")[0]
    assert float(pub.get("x1")) < float(pub.get("x2"))
    assert float(ok.get("x1")) > float(ok.get("x2"))
    # each arrow links to its raw message, which exists
    for g in groups:
        target = g.xpath(".//a")[0].get("href")[1:]
        assert article.xpath(f'.//*[@id="{target}"]')


def test_ladder_without_messages_says_so() -> None:
    svg = H.ladder_svg([], server="server (x)")
    assert "no SIP messages were captured" in svg
    assert svg.count("<g class=") == 0


def test_diff_shows_the_missing_dialog(page: Any, doc: dict[str, Any]) -> None:
    idx = next(i for i, c in enumerate(doc["cases"]) if c["case"].startswith("test_two_pub"))
    table = page.xpath(f'//article[@id="case-{idx}"]//table[@class="diff"]')[0]
    deleted = [td.text_content() for td in table.xpath('.//td[@class="d-del"]')]
    assert any('id="d2"' in line for line in deleted)
    assert any("confirmed" in line for line in deleted)
    assert not table.xpath('.//td[@class="d-ins"]')


def test_raw_messages_and_bodies_are_folded(page: Any) -> None:
    summaries = [s.text_content() for s in page.xpath('//article[@class="case"]//details/summary')]
    assert "SIP messages (8)" in summaries
    assert "NOTIFY bodies (2)" in summaries
    for details in page.xpath('//article[@class="case"]//details'):
        assert details.get("open") is None


def test_hostile_content_is_escaped(doc: dict[str, Any]) -> None:
    text = H.render(doc)
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in text
    page = lxml.html.document_fromstring(text)
    assert not page.xpath("//script")
    # shown as text, where a person reads it: finding, ladder label, raw message, body
    assert sample.HOSTILE in page.text_content()


def test_hostile_values_in_every_field_cannot_inject() -> None:
    evil = '"><script>x</script><img src=x onerror=alert(1)>\x00\x1b[31m'
    case = sample.case(
        evil,
        ["A01"],
        "failed",
        [
            sample.finding(
                "A01", "fail", evil, reason=evil, evidence={"expected": [evil], evil: evil}
            )
        ],
        messages=[sample.sip_message(evil, evil, evil, 0.0, body=evil)],
        notifies=[{"party": evil, "timestamp": 1.0, "version": evil, "state": evil, "body": evil}],
        longrepr=evil,
    )
    info = sample.run_info()
    info["target"].update(name=evil, user_agent=evil, address=evil)
    info["options"] = {evil: evil}
    text = H.render(build_results(info, [case]))
    page = lxml.html.document_fromstring(text)
    assert not page.xpath("//script | //img | //*[@onerror]")
    assert "\x00" not in text and "\x1b" not in text
    assert "\\x00\\x1b[31m" in page.text_content()


def test_no_external_resources(page: Any) -> None:
    text = H.render(build_results(*sample.sample_run()))
    assert not page.xpath("//link | //script | //img | //iframe | //object | //embed")
    # the only URLs: the SVG namespace and in-page anchors
    urls = set(re.findall(r'(?:href|src)="([^"#][^"]*)"', text))
    assert urls == set()
    assert "default-src 'none'" in text


def test_long_text_is_cut() -> None:
    assert len(H.esc("x" * (H.MAX_TEXT + 500), H.MAX_TEXT)) < H.MAX_TEXT + 100
    assert "500 more characters not shown" in H.esc("x" * (H.MAX_TEXT + 500), H.MAX_TEXT)


@pytest.mark.parametrize(
    ("xml", "lines"),
    [
        (
            '<dialog id="a"><state>early</state><local><identity>x</identity></local></dialog>',
            [
                '<dialog id="a">',
                "  <state>early</state>",
                "  <local>",
                "    <identity>x</identity>",
                "  </local>",
                "</dialog>",
            ],
        ),
        ("<x/>", ["<x/>"]),
        ("not xml at all", ["not xml at all"]),
    ],
)
def test_pretty_xml(xml: str, lines: list[str]) -> None:
    assert H.pretty_xml(xml) == lines


def test_diff_table_insert_and_replace() -> None:
    page = lxml.html.fragment_fromstring(H.diff_table(["<a/>", "<b/>"], ["<a/>", "<c/>", "<d/>"]))
    assert [td.text_content() for td in page.xpath('.//td[@class="d-chg"]')] == ["<b/>", "<c/>"]
    assert [td.text_content() for td in page.xpath('.//td[@class="d-ins"]')] == ["<d/>"]


def test_ladder_marks_the_offending_notify() -> None:
    """The explorer's reproducers mark the NOTIFY a failure blames; the ladder labels it."""
    msg = {
        "timestamp": 1.0,
        "party": "watcher-1",
        "direction": "received",
        "first_line": "NOTIFY sip:w@h SIP/2.0",
        "raw": "NOTIFY sip:w@h SIP/2.0\r\n\r\n",
    }
    note = {"party": "watcher-1", "timestamp": 1.0, "version": "3", "state": "full"}
    assert "offending" not in H.ladder_svg([msg], notifies=[note])
    svg = H.ladder_svg([msg], notifies=[{**note, "offending": True}])
    assert "NOTIFY (✗ offending v3 full)" in svg
