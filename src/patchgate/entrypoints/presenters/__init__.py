"""Presenters: one module per area that renders the area's views for people and scripts.

JSON shapes here are shared by the management API and the CLI's ``--json``; text
renderings are what the CLI prints. Presenters read views and records only: they never
change state and never import an entrypoint (docs/architecture.md).
"""
