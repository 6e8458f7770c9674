"""Pure rendering: Block Kit (blocks.py), forms (forms.py), what the bot says (answers.py),
Slack and Markdown text (text.py, content.py), the postmortem draft (postmortem.py) and
report tables (report.py). Functions of their arguments; no I/O, no store, no Slack client."""
