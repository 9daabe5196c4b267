"""Entrypoints translate between the outside world and the services: the device API (DDI),
the management API, the web pages and the CLI. They decide nothing themselves."""
