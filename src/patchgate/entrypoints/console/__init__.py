"""The web console under ``/console/`` (docs/console.md): server-rendered pages for the
people who run patchgate, signed in with a management token."""
