"""Presenters: one module per area that renders the area's views (frozen dataclasses from
``patchgate.services.<area>.views``) as JSON, for the API and the CLI's ``--json`` alike,
as text for people, and as Markdown where a document is drafted. Presenters read views
only: they never change state."""
