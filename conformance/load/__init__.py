"""Load measurement (``dialoginfo-conformance load``), the pure part: latency histograms that
merge across hosts, and the judgement of the load generators' log lines. No I/O here; the
command (conformance/commands/load.py) runs SIPp and feeds the lines in."""
