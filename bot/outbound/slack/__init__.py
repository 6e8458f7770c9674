"""Slack as a place the bot writes to and reads from: surfaces/ (channel, card, topic,
announcement, posts; a module each), replies.py (answers to a person), directory.py (people
and user groups), budget.py (Slack's rate tiers), history.py (a channel's messages for the
postmortem)."""
