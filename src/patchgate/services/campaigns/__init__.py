"""The campaign engine as use cases (docs/campaigns.md, docs/campaign-core.md):

* :mod:`.commands` change state (create, the transitions, the gate evaluation);
* :mod:`.views` read it (frozen dataclasses, one query each);
* :mod:`.poll` is what the device poll plugs in;
* :mod:`.plans`, :mod:`.figures` and :mod:`.effects` are shared by them.
"""
