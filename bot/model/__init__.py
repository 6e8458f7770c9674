"""The records and the pure rules about them, with no I/O: tables.py (what the database keeps),
rules.py (what may happen to an incident), figures.py (durations and figures), and alert
payloads and routing (what an alert says, and which incident it belongs to)."""
