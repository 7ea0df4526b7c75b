# ruff: noqa: E501  (the SIPp XML lines are kept whole, as SIPp reads them)
"""Writes the simulated phones of this folder: ``python sipp_scenarios/phones/generate.py``.

Why generate? The phones share everything but the decision they take on a NOTIFY (answer 200,
400 or 481, ignore it, or die and reboot), and SIPp has no includes. Each phone with a limit
takes it at run time (``-set limit N``: more than N dialogs is "too many"), so tests run one
scenario at several limits. Edit this file, run it, commit both.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!--
  {name}.xml: a simulated phone for the phone compatibility kit (dialoginfo-conformance phone).
{what}
  Part of dialoginfo-conformance; run by tests/integration/test_phone_kit.py.

  Run: sipp KIT_HOST:KIT_PORT -sf {name}.xml -s PRESENTITY -m 1 -timeout 60s -nostdin
       -default_behaviors none -i 127.0.0.1 -p PORT{sets} ...
  It SUBSCRIBEs to Event: dialog for PRESENTITY at the kit, then answers NOTIFYs and
  in-dialog OPTIONS until a NOTIFY with Subscription-State: terminated (the kit's last one).
  The answer to a NOTIFY is decided from its body with <ereg> and <test>: each regexp has the
  form ^(X|) so it always matches (SIPp keeps an old value when a regexp does not match) and the
  capture is empty exactly when X is absent.{count}
-->
<scenario name="simulated phone: {name}">
{globals}"""
COUNT = """
  The dialogs are counted from the kit's numbering (local-tag="lt0", "lt1", ...): the greedy
  regexp captures the last index, so a body has more than LIMIT dialogs exactly when that index
  is at least LIMIT (a body without such tags keeps the preset 0)."""


def subscribe(tag: str, label: str = "") -> str:
    return f"""{label}  <send>
    <![CDATA[
      SUBSCRIBE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]-[clock_tick]
      From: <sip:phone@[local_ip]>;tag=[call_number]{tag}
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: [cseq] SUBSCRIBE
      Contact: <sip:phone@[local_ip]:[local_port]>
      Max-Forwards: 70
      Event: dialog
      Accept: application/dialog-info+xml
      Expires: 600
      User-Agent: simulated-phone {{name}}
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" next="loop"/>
"""


def answer(status: str, label: str, nxt: str = "loop") -> str:
    return f'''  <label id="{label}"/>
  <send next="{nxt}">
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
'''


TERM = """      <ereg regexp="^(.*Subscription-State: *terminated|)" search_in="msg" assign_to="term"/>
      <strcmp assign_to="c_term" variable="term" value=""/>
      <test assign_to="is_term" variable="c_term" compare="not_equal" value="0"/>
"""
OVER = """      <assignstr assign_to="last" value="0"/>
      <ereg regexp=".*local-tag=.lt([0-9]+)." search_in="body" assign_to="m_last,last"/>
      <todouble assign_to="n_last" variable="last"/>
      <todouble assign_to="n_limit" variable="limit"/>
      <test assign_to="is_over" variable="n_last" compare="greater_than_equal" variable2="n_limit"/>
      <log message="NOTIFY: last dialog index [$n_last], limit [$n_limit], over: [$is_over] [$m_last]"/>
"""
PARTIAL = """      <ereg regexp="^(.*&lt;dialog-info[^&gt;]*state=.partial.|)" search_in="body" assign_to="partial"/>
      <strcmp assign_to="c_partial" variable="partial" value=""/>
      <test assign_to="is_partial" variable="c_partial" compare="not_equal" value="0"/>
"""


def recv_loop(checks: str, branches: str) -> str:
    return f"""  <label id="loop"/>
  <recv request="OPTIONS" optional="true" next="options"/>
  <recv request="NOTIFY" timeout="30000" ontimeout="done">
    <action>
{checks}    </action>
  </recv>
  <nop next="last" test="is_term"/>
{branches}"""


DEAD = """  <label id="dead"/>
  <nop>
    <action>
      <todouble assign_to="n_reboot" variable="reboot"/>
    </action>
  </nop>
  <pause variable="n_reboot"/>
"""

PHONES: dict[str, tuple[str, bool, str, str, str]] = {
    # name: (what it does, takes a limit, NOTIFY checks, branches on them, extra answers)
    "tolerant": (
        "  A tolerant phone: answers 200 to every NOTIFY, whatever the body.",
        False,
        TERM,
        "",
        "",
    ),
    "strict": (
        "  A strict phone: answers 400 to a body with more than LIMIT dialogs (-set limit N),\n"
        "  200 otherwise.",
        True,
        TERM + OVER,
        '  <nop next="reject" test="is_over"/>\n',
        answer("400 Bad Request", "reject"),
    ),
    "silent": (
        "  A phone that silently ignores (never answers) a NOTIFY with more than LIMIT dialogs\n"
        "  (-set limit N) but stays alive: it still answers OPTIONS and the next NOTIFYs.",
        True,
        TERM + OVER,
        '  <nop next="loop" test="is_over"/>\n',
        "",
    ),
    "crash": (
        "  The Linksys SPA962 case: a body with more than LIMIT dialogs (-set limit N) kills it.\n"
        "  Dead, it answers nothing (not even OPTIONS) for REBOOT ms (-set reboot MS), then it\n"
        '  "reboots": SUBSCRIBEs again with a new From tag, like a phone after a power cycle.',
        True,
        TERM + OVER,
        '  <nop next="dead" test="is_over"/>\n',
        "",
    ),
    "partial481": (
        '  A phone that answers 481 to a state="partial" document, which ends the subscription\n'
        "  (RFC 6665 §4.2.2), then SUBSCRIBEs again at once, as real phones do after a while.\n"
        "  It also answers 400 to a body with more than LIMIT dialogs (-set limit N).",
        True,
        TERM + OVER + PARTIAL,
        '  <nop next="reject481" test="is_partial"/>\n  <nop next="reject" test="is_over"/>\n',
        answer("400 Bad Request", "reject"),
    ),
}


def render(name: str) -> str:
    """The scenario text of one phone."""
    what, limited, checks, branches, extra = PHONES[name]
    sets = " -set limit N" if limited else ""
    if name == "crash":
        sets += " -set reboot MS"
    glob = ""
    if limited:
        names = "limit,reboot" if name == "crash" else "limit"
        glob = f'  <Global variables="{names}"/>\n'
    out = HEAD.format(name=name, what=what, sets=sets, count=COUNT if limited else "", globals=glob)
    out += subscribe("a").replace('<recv response="200" next="loop"/>', '<recv response="200"/>')
    out += recv_loop(checks, branches)
    out += answer("200 OK", "ok")
    out += extra
    if name == "crash":
        out += DEAD + subscribe("r[clock_tick]")
    if name == "partial481":
        out += answer("481 Subscription Does Not Exist", "reject481", nxt="resubscribe")
        out += subscribe("b", '  <label id="resubscribe"/>\n')
    out += answer("200 OK", "options")
    out += answer("200 OK", "last", nxt="done")
    out += '  <label id="done"/>\n</scenario>\n'
    return out.replace("{name}", name)


def main() -> None:
    for name in PHONES:
        (HERE / f"{name}.xml").write_text(render(name), encoding="latin-1")


if __name__ == "__main__":
    main()
