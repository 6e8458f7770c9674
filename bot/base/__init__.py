"""Below every layer: settings.py (configuration), errors.py (what may go wrong, and how it is
said) and work.py (slots, locks and pacing of concurrent work). Imports nothing else of the
bot."""
