"""Everything that leaves the bot: the store (the database, the truth) and the gateways to
outside systems (slack/: the incident's surfaces, the directory of people, Slack's pacing).
Gateways render with views and never decide what should happen; operations do."""
