"""Adapters: the database, the artifact store, the TUF repository, notifications.

They implement the ports that ``patchgate.services`` declares.
"""
