"""Use cases, each run inside a unit of work that rolls back unless committed.

Services know the domain and the ports (abstract repositories) they need; they never see
HTTP requests, CLI arguments or SQLAlchemy.
"""
