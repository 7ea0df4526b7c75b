"""The pytest plugin of the dialog-info conformance kit (the ``pytest11`` entry point).

It loads in every pytest run of an environment where the kit is installed, so it lives beside
other plugins and projects: every option is ``--dialoginfo-*``, every fixture ``dialoginfo_*``,
every marker ``dialoginfo_*``, and nothing starts, prints or writes unless a collected item
carries the ``dialoginfo_requirement`` marker (the cases of ``conformance.suite`` and cases
written with ``conformance.testing`` do).

Modules: ``options`` (command line -> settings), ``fixtures`` (target, peers, the case handle),
``hooks`` (markers, selection, judging each case, the report blob), ``collector`` (the xdist
controller's summary and report), ``scheduling`` (``-n auto`` by waiting, longest case
first). The judge itself is pure: ``conformance.oracle.verdicts``.
"""

from __future__ import annotations

pytest_plugins = [
    "conformance.pytest_plugin.options",
    "conformance.pytest_plugin.fixtures",
    "conformance.pytest_plugin.hooks",
    "conformance.pytest_plugin.collector",
    "conformance.pytest_plugin.scheduling",
]
