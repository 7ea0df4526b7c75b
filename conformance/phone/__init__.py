"""The phone compatibility kit: which dialog-info bodies does a phone (a watcher) survive?

The kit plays the presence server for one phone. After the phone SUBSCRIBEs to ``Event: dialog``
it sends one NOTIFY per probe (exact dialog count and body size limits by bisection, then
states, partial state, empty forms, versions, extensions) and records whether the phone
accepted, rejected, ignored it while staying alive, or crashed.

Layers, pointing one way:

* ``probes``: the fixed probes as data and the bodies they send (pure).
* ``planner``: which probe next: the count and size searches for exact limits (pure).
* ``verdicts``: conclusions a deployer needs, derived from probe outcomes alone (pure).
* ``session``: the sans-IO state machine (bytes and a clock in, bytes and timers out).
* ``stream``: SIP message framing on a TCP byte stream (pure).
* ``runner``: the asyncio UDP/TCP edge around ``session`` (signals, progress lines).

The report (JSON and HTML) is ``conformance.report.phone``; ``conformance.commands.phone``
wires the three together. Nothing here imports ``report`` or ``commands``.
"""
