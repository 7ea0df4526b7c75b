"""dialog-info conformance kit: an oracle for RFC 4235 dialog-info bodies and presence_dialoginfo
aggregation, and a pytest suite that drives real SIPp peers against a presence server.

Importing the package loads nothing heavy: the oracle modules are imported where used.
"""

__version__ = "0.1.0"
