"""The agent's exceptions form one tree under ``AgentError``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import patchgate.agent
from patchgate.agent.errors import AgentError
from patchgate.agent.io import PowerCut


def test_every_exception_the_agent_defines_has_one_root() -> None:
    found: set[type[BaseException]] = set()
    for info in pkgutil.iter_modules(patchgate.agent.__path__, "patchgate.agent."):
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("patchgate.agent"):
                found.add(value)
    assert len(found) > 10
    strays = {cls for cls in found if not issubclass(cls, AgentError)} - {PowerCut}
    assert not strays, strays
    # A power cut must stay uncatchable by the agent's own handlers.
    assert not issubclass(PowerCut, Exception)
