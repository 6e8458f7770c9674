"""Benchmarks: the real bot over HTTP against the fake Slack. Run `python -m bench.run`."""
