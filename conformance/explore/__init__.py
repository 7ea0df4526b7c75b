"""Model-based exploration (issue 13): generated bodies and operations, shrinking, replay.

Pure modules (no I/O): ``bodies`` (dialog-info documents from the RFC 4235 schema), ``ops``
(the operation model and its generator), ``shrink`` (delta debugging over an operation list);
``replay`` reads and writes the JSON regression files.
"""
