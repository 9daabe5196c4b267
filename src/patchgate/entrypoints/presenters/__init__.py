"""Presenters: each renders an area's views (frozen dataclasses from
``patchgate.services.<area>.views``) as JSON, for the API and the CLI's ``--json`` alike,
and as text. Presenters import views only, never commands."""
