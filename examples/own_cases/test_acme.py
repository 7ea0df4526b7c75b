"""ACME's own dialog-info case, written on the kit's public API only (``conformance.testing``).

Run it, from anywhere, against any target the kit reaches::

    pytest test_acme.py --dialoginfo-catalogue acme.toml --dialoginfo-target sip:HOST:PORT
"""

from __future__ import annotations

from conformance.testing import Case, dialog, requirement


@requirement("X-acme-1")
def test_shared_line_shows_every_phone(dialoginfo_case: Case) -> None:
    """Two phones on one line publish their own calls; a BLF watcher of the line must see both
    (the server aggregates the publications of one presentity)."""
    case = dialoginfo_case
    line = case.user("shared")
    case.publish(line, [dialog("desk-1", "confirmed")])  # the desk phone's call
    blf = case.subscribe(line)
    case.publish(line, [dialog("mobile-1", "early")])  # the mobile rings meanwhile
    seen = case.expect_view(blf, line, ["X-acme-1"])
    shown = ",".join(sorted(f"{d.id}:{d.state}" for d in seen.observed))
    case.finding(
        "X-acme-1",
        {"desk-1", "mobile-1"} <= {d.id for d in seen.observed},
        f"the line's BLF shows {shown or 'nothing'}",
        observed=shown,
    )
