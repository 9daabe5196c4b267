"""CSAF 2.0 security advisories: create, publish, list, show; the CSAF provider files."""
