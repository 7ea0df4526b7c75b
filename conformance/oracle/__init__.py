"""The oracle: pure, no I/O.

Dialog-info values, schema, aggregator, §4.3 view, checks, findings, the catalogue.
"""
