"""The management REST API under ``/api/v1`` (bearer tokens, JSON, OpenAPI)."""
