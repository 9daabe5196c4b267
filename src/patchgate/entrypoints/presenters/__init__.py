"""Renderings shared by the CLI and the web pages (Markdown, HTML)."""
