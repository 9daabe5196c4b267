"""Presenters: render the services' views as JSON (the API and ``--json`` alike) and text."""
