"""The phone compatibility kit: which dialog-info bodies does a phone (a watcher) survive?

The kit plays the presence server for one phone. After the phone SUBSCRIBEs to ``Event: dialog``
it sends one NOTIFY per probe of a plan (dialog counts, empty forms, partial state, versions,
extensions, sizes) and records whether the phone accepted, rejected or stopped answering.

Layers, pointing one way:

* ``probes``: the probe plan as data and the bodies it sends (pure).
* ``verdicts``: conclusions a deployer needs, derived from probe outcomes alone (pure).
* ``session``: the sans-IO state machine (bytes and a clock in, bytes and timers out).
* ``stream``: SIP message framing on a TCP byte stream (pure).
* ``runner``: the asyncio UDP/TCP edge around ``session``.
* ``report``: the phone report, JSON and HTML.
"""
