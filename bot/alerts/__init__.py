"""Alert intake: webhooks from Alertmanager, Grafana and anything that can post JSON open
incidents, once per alert group, and keep them informed."""
