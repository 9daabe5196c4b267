"""quick_init: a frozen, slotted dataclass built through its slots is the object the
dataclass's own constructor builds."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from patchgate.domain import executions as ex
from patchgate.domain.campaigns import Decision, DeviceFacts, Offer
from patchgate.domain.records import quick_init

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _plain(cls: type) -> type:
    """A twin of ``cls`` with the constructor ``dataclass`` writes."""
    namespace = {
        "__annotations__": dict(cls.__annotations__),
        "__module__": cls.__module__,
        **{
            f.name: (
                field(default_factory=f.default_factory)
                if f.default_factory is not dataclasses.MISSING
                else f.default
            )
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        },
    }
    return dataclass(frozen=True, slots=True)(type(cls.__name__, (), namespace))


@pytest.mark.parametrize(
    ("cls", "args", "kwargs"),
    [
        (ex.Event, (ex.OFFERED, NOW), {}),
        (ex.Event, (ex.SEEN_WITH_VERSION, NOW), {"version": "1.1.0", "detail": "x"}),
        (ex.Execution, (ex.S_OFFERED, 1, NOW, None, None, None, NOW), {}),
        (ex.Execution, (), {}),
        (DeviceFacts, ("d-1", "p"), {"groups": frozenset({"qa"}), "security_floor": 2}),
        (Offer, (1, 2, "1.1.0", "rollout", 0, "forced", "forced", False, None), {}),
        (Decision, (None, "not-in-stage"), {}),
    ],
)
def test_a_quick_constructor_stores_what_the_dataclass_constructor_stores(
    cls: type, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    made = cls(*args, **kwargs)
    twin = _plain(cls)(*args, **kwargs)
    assert [getattr(made, f.name) for f in dataclasses.fields(cls)] == [
        getattr(twin, f.name) for f in dataclasses.fields(cls)
    ]
    assert repr(made) == repr(twin)
    assert made == cls(*args, **kwargs)
    if cls is not DeviceFacts:  # (its mappings can be neither hashed nor pickled)
        assert hash(made) == hash(cls(*args, **kwargs))
        assert pickle.loads(pickle.dumps(made)) == made  # noqa: S301 - its own bytes


def test_the_quick_constructor_keeps_the_signature() -> None:
    for cls in (ex.Event, ex.Execution, DeviceFacts, Offer, Decision):
        assert str(inspect.signature(cls)) == str(inspect.signature(_plain(cls)))


def test_a_quick_record_stays_frozen_and_replace_works() -> None:
    event = ex.Event(ex.OFFERED, NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.kind = ex.DOWNLOADING  # type: ignore[misc]
    assert dataclasses.replace(event, kind=ex.DOWNLOADING) == ex.Event(ex.DOWNLOADING, NOW)


def test_a_quick_record_is_an_instance_of_its_class_and_copies_as_one() -> None:
    execution = ex.Execution(ex.S_OFFERED, 1, NOW, None, None, None, NOW)
    assert type(execution) is ex.Execution
    assert copy.copy(execution) == execution
    assert copy.deepcopy(execution) == execution
    assert type(copy.deepcopy(execution)) is ex.Execution


def test_a_subclass_of_a_quick_record_is_built_as_the_subclass() -> None:
    class Retried(ex.Event):
        __slots__ = ()

    event = Retried(ex.FAILURE_REPORTED, NOW, transient=True)
    assert type(event) is Retried
    assert (event.kind, event.at, event.transient, event.detail) == (
        ex.FAILURE_REPORTED,
        NOW,
        True,
        "",
    )


def test_default_factories_and_post_init_run() -> None:
    seen: list[int] = []

    @quick_init
    @dataclass(frozen=True, slots=True)
    class Thing:
        a: int
        b: list[int] = field(default_factory=list)

        def __post_init__(self) -> None:
            seen.append(self.a)

    first, second = Thing(1), Thing(2)
    assert first.b == [] and first.b is not second.b
    assert Thing(3, [4]).b == [4]
    assert seen == [1, 2, 3]


def test_only_frozen_slotted_positional_dataclasses_are_accepted() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True, slots=True, kw_only=True)
    class KeywordOnly:
        a: int

    for cls in (NoSlots, NotFrozen, KeywordOnly):
        with pytest.raises(TypeError):
            quick_init(cls)
