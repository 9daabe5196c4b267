"""A cheaper constructor for the frozen, slotted dataclasses that are made once per device
event (execution events, folded executions, poll facts and answers).

The ``__init__`` that :func:`dataclasses.dataclass` writes for a frozen class stores each
field with ``object.__setattr__(self, name, value)``: the class's own ``__setattr__``
refuses every assignment, so each store is a generic call instead of the interpreter's
direct write to a slot. :func:`quick_init` builds the object as an instance of a private
*layout twin* instead — a plain class with the very same ``__slots__`` and no
``__setattr__`` of its own, whose slots the interpreter writes directly — and then makes it
an instance of the record's class by assigning ``__class__``, which Python allows between
two classes of the same slot layout (the interpreter checks the layouts at every such
assignment, and refuses one that differs). The same parameters, defaults, default
factories and ``__post_init__``, the same stored values, in about half the time of a
dataclass constructor that stores each field through its slot's setter.

The constructor is the class's ``__new__`` (its ``__init__`` is ``object``'s, so nothing is
stored twice). Everything else the dataclass made (frozen ``__setattr__``, ``__eq__``,
``__hash__``, ``__repr__``, :func:`dataclasses.replace`) is left as it is; pickling and
:mod:`copy` rebuild a record by calling its class with its fields. A subclass of a record
gets the same values stored through the slots' setters.

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
    """``cls`` with a constructor that builds it through a twin of its slot layout (module
    docstring). ``cls`` must be a frozen dataclass with ``slots=True`` whose fields are all
    positional ``__init__`` parameters (no ``kw_only``, ``init=False`` or ``InitVar``)."""
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    slots = tuple(getattr(cls, "__slots__", ()))
    if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__}: quick_init is for frozen dataclasses")
    if tuple(f.name for f in params) != slots:
        raise TypeError(f"{cls.__name__}: every field must be a slot (slots=True)")
    if cls.__bases__ != (object,):
        # The layout twin copies this class's own slots only: a base's would be missing.
        raise TypeError(f"{cls.__name__}: quick_init is for records without a base class")
    if any(f.kw_only or not f.init for f in params) or hasattr(cls, "__dataclass_initvars__"):
        raise TypeError(f"{cls.__name__}: only plain positional fields are supported")
    layout = type(f"_{cls.__name__}Layout", (), {"__slots__": slots, "__module__": cls.__module__})
    namespace: dict[str, Any] = {
        "_FACTORY": _FACTORY,
        "_new": object.__new__,
        "_layout": layout,
        "_record": cls,
    }
    args, values = [], []
    for f in params:
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
        values.append(value)
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__
    direct = [f"        self.{f.name} = {value}" for f, value in zip(params, values, strict=True)]
    through = [f"        _set_{f.name}(self, {v})" for f, v in zip(params, values, strict=True)]
    lines = [
        f"def __new__(cls, {', '.join(args)}):",
        "    if cls is _record:",
        "        self = _new(_layout)",
        *direct,
        "        self.__class__ = cls",
        "    else:  # a subclass: its layout may differ",
        "        self = _new(cls)",
        *through,
    ]
    if hasattr(cls, "__post_init__"):
        lines.append("    self.__post_init__()")
    lines.append("    return self")
    exec("\n".join(lines) + "\n", namespace)  # noqa: S102 - generated from the class's own field names
    new = namespace["__new__"]
    original = cls.__init__
    new.__qualname__ = f"{cls.__qualname__}.__new__"
    new.__module__ = cls.__module__
    # The dataclass constructor's annotations: ``inspect.signature(cls)`` is unchanged.
    new.__annotations__ = dict(original.__annotations__)
    new.__doc__ = original.__doc__
    names = tuple(f.name for f in params)

    def reduce(self: T) -> tuple[type[T], tuple[object, ...]]:
        return type(self), tuple(getattr(self, name) for name in names)

    reduce.__name__ = "__reduce__"
    reduce.__qualname__ = f"{cls.__qualname__}.__reduce__"
    cls.__new__ = staticmethod(new)  # type: ignore[method-assign]
    # ``object.__init__``: it accepts the arguments once ``__new__`` is the class's own.
    del cls.__init__
    cls.__reduce__ = reduce  # type: ignore[assignment,method-assign]
    return cls
