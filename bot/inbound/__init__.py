"""What comes in: http.py (signed Slack requests over HTTP), socket.py (Socket Mode),
listeners/ (Bolt listeners: parse, ack, call one operation, answer), metrics.py (/metrics).
Imports operations below it; nothing below imports it."""
