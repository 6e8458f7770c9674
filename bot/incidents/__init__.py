"""What can happen to an incident: rules.py (pure), declare.py, response.py (severity, roles,
updates, resolve), timeline.py (messages, notes, follow-ups), find.py (which incident a
request is about), repair.py (finishing what crashes and outages left half-done)."""
