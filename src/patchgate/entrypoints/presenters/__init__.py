"""Presenters: one per area, rendering its views as JSON (API and CLI alike) and text."""
