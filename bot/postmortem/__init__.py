"""The postmortem draft: history.py (the channel from Slack), render.py (pure Markdown),
compile.py (facts in, a stored and shared draft out)."""
