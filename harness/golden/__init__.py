"""Golden outputs: the store, the verdicts, blessing (host)."""
