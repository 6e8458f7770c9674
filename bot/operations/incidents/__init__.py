"""What can happen to an incident: declare.py, response.py (severity, roles, updates,
resolve), timeline.py (messages, notes, follow-ups), find.py (which incident a request is
about), repair.py (finishing what crashes and outages left half-done), drift.py (Slack
changing under the bot). The pure rules are in bot.model.rules."""
