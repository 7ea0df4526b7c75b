"""The harness: SIPp processes, ports and the command-driven peers (publisher, watcher, fetch)."""
