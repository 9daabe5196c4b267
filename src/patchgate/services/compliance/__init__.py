"""Compliance evidence: the checklist from live data and the technical file."""
