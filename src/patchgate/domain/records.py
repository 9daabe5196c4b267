"""A cheaper constructor for the frozen, slotted dataclasses that are made once per device
event (execution events, folded executions, poll facts and answers).

The ``__init__`` that :func:`dataclasses.dataclass` writes for a frozen class stores each
field with ``object.__setattr__(self, name, value)``, a generic call that looks the name up
on the type every time. For a class with ``__slots__`` that lookup always ends at the
field's slot (a member descriptor), so :func:`quick_init` writes an ``__init__`` that calls
each slot's own setter instead: the same parameters, defaults, default factories and
``__post_init__``, the same stored values, in about half the time. Everything else the
dataclass made (frozen ``__setattr__``, ``__eq__``, ``__hash__``, ``__repr__``,
:func:`dataclasses.replace`, pickling) is left as it is.

Apply it over the dataclass decorator::

    @quick_init
    @dataclass(frozen=True, slots=True)
    class Event: ...
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


class _Factory:
    """The default of a parameter whose field has a default factory."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def quick_init(cls: type[T]) -> type[T]:
    """``cls`` with an ``__init__`` that stores its fields through their slots (module
    docstring). ``cls`` must be a frozen dataclass with ``slots=True`` whose fields are all
    positional ``__init__`` parameters (no ``kw_only``, ``init=False`` or ``InitVar``)."""
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    slots = getattr(cls, "__slots__", ())
    if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__}: quick_init is for frozen dataclasses")
    if tuple(f.name for f in params) != tuple(slots):
        raise TypeError(f"{cls.__name__}: every field must be a slot (slots=True)")
    if any(f.kw_only or not f.init for f in params) or hasattr(cls, "__dataclass_initvars__"):
        raise TypeError(f"{cls.__name__}: only plain positional fields are supported")
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    args, body = [], []
    for f in params:
        setter = f"_set_{f.name}"
        namespace[setter] = getattr(cls, f.name).__set__
        value = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            args.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            args.append(f"{f.name}=_FACTORY")
            value = f"_factory_{f.name}() if {f.name} is _FACTORY else {f.name}"
        else:
            args.append(f.name)
        body.append(f"    {setter}(self, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)  # noqa: S102 - generated from the class's own field names
    init = namespace["__init__"]
    original = cls.__init__
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(original.__annotations__)
    init.__doc__ = original.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
