"""What the bot does, one operation per verb: incidents/ (declare, respond, timeline, find,
repair, drift), postmortem.py, alerts.py, reminders.py, nudges.py, home.py and report.py.
Rules and the order of steps; the details of Slack and HTTP stay in inbound and outbound."""
