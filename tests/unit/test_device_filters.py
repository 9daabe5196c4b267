"""hawkBit's target-filter language: parsing, printing and evaluation against one device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain import filters as q


@dataclass(frozen=True)
class Dev:
    controller_id: str = "gw-0001"
    groups: Sequence[str] = ("canary-optin",)
    hardware: str | None = "demo-gw-1"
    installed_version: str | None = "1.9.0"
    attributes: Mapping[str, object] = field(default_factory=lambda: {"slots": "ab"})
    last_seen: datetime | None = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    metadata: Mapping[str, object] = field(default_factory=lambda: {"site": "berlin"})


def sel(query: str, device: Dev | None = None) -> bool:
    return q.matches(q.parse(query), device or Dev())


# ---- each operator on each field -----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("id==gw-0001", True),
        ("id==gw-0002", False),
        ("id==gw-*", True),
        ("id==*-0001", True),
        ("id==GW-*", False),
        ("id!=gw-0001", False),
        ("id!=gw-9*", True),
        ("id=in=(a,gw-0001)", True),
        ("id=out=(a,gw-0001)", False),
        ("id<gw-0002", True),
        ("id>=gw-0002", False),
        ("controllerId==gw-0001", True),
        ("group==canary-optin", True),
        ("group==qa", False),
        ("group!=qa", True),
        ("group!=canary-optin", False),
        ("group=in=(qa,canary-*)", True),
        ("group=out=(qa,internal)", True),
        ("tag==canary-optin", True),
        ("hardware==demo-gw-1", True),
        ("hardware=is=null", False),
        ("hardware=not=null", True),
        ("version==1.9.0", True),
        ("version<1.10", True),
        ("version=lt=1.10", True),
        ("version<=1.9", True),
        ("version>1.9.0", False),
        ("version>=1.9.0-rc.1", True),
        ("installedds.version==1.9.*", True),
        ("attribute.slots==ab", True),
        ("attribute.slots!=ab", False),
        ("attribute.missing!=ab", True),
        ("attribute.missing==ab", False),
        ("attribute.missing=is=null", True),
        ("attribute.slots=in=(a,ab)", True),
        ("metadata.site==berlin", True),
        ("metadata.site==ber*", True),
        ("metadata.site!=berlin", False),
        ("metadata.site=out=(paris)", True),
        ("metadata.slots==ab", False),
        ("metadata.missing=is=null", True),
        ("metadata.site=not=null", True),
        ("attribute.site==berlin", False),
        ("last_seen<2026-11-21T00:00:00Z", True),
        ("last_seen>2026-11-21T00:00:00Z", False),
        ("last_seen==2026-11-20T12:00:00Z", True),
        ("lastcontrollerrequestat>=1763640000000", True),
        ("last_seen=is=null", False),
    ],
)
def test_each_operator_selects_the_device_it_names(query: str, expected: bool) -> None:
    assert sel(query) is expected


def test_a_device_without_a_value_is_never_ordered_and_differs_from_every_value() -> None:
    blank = Dev(hardware=None, installed_version=None, attributes={}, last_seen=None)
    assert not sel("version<9", blank)
    assert not sel("version==1.0", blank)
    assert sel("version!=1.0", blank)
    assert sel("hardware=out=(a,b)", blank)
    assert not sel("last_seen<2030-01-01T00:00:00Z", blank)
    assert sel("last_seen=is=null", blank)


def test_a_version_that_cannot_be_ordered_is_not_less_than_anything() -> None:
    assert not sel("version<2.0", Dev(installed_version="banana"))
    assert sel("version==banana", Dev(installed_version="banana"))


def test_and_binds_tighter_than_or_and_parentheses_group() -> None:
    assert sel("group==qa;id==nope,hardware==demo-gw-1")
    assert not sel("group==qa;(id==nope,hardware==demo-gw-1)")
    assert sel("group==qa or id==gw-0001 and hardware==demo-gw-1")


def test_words_and_symbols_build_the_same_tree() -> None:
    assert q.parse("id==a and group==b or hardware==c") == q.parse("id==a;group==b,hardware==c")
    assert q.parse("( id == a ; group == b )") == q.parse("id==a;group==b")


def test_quoted_values_keep_reserved_characters() -> None:
    device = Dev(attributes={"note": "a b;c,d"})
    assert sel("attribute.note=='a b;c,d'", device)
    assert sel('attribute.note=="a b;c,d"', device)
    assert q.parse(r'id=="say \"hi\""') == q.Comparison(q.Field("id"), "==", ('say "hi"',))


# ---- errors name the position -----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "empty query"),
        ("group==", "a value at position 7"),
        ("colour==red", "unknown field 'colour' at position 0"),
        ("group==qa;meta.site==x", "unknown field 'meta.site' at position 10"),
        ("metadata==x", "unknown field 'metadata' at position 0"),
        ("id==a;;id==b", "a field name"),
        ("id~a", "an operator (==, !="),
        ("id=like=a", "a known operator"),
        ("id=in=a", "'(' and a list of values"),
        ("id=in=(a,b", "',' or ')'"),
        ("(id==a", "')' at position 6"),
        ("id==a)", "';', ',' or the end at position 5"),
        ("id=='open", "a closing '"),
        ("version<banana", "'banana' is not a version"),
        ("group<a", "group takes ==, !=, =in= or =out="),
        ("last_seen<yesterday", "not an RFC 3339 time"),
        ("last_seen<2026-01-01T00:00:00", "needs a time zone"),
        ("hardware=is=x", "=is= takes only null"),
        ("id=is=null", "id is never null"),
        ("(" * 40 + "id==a" + ")" * 40, "nested parentheses"),
        ("id==" + "a" * 5000, "longer than"),
    ],
)
def test_a_malformed_query_is_refused_with_its_position(query: str, fragment: str) -> None:
    with pytest.raises(q.FilterError) as info:
        q.parse(query)
    assert fragment in info.value.message


# ---- printing round-trips -----------------------------------------------------------------

_values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=8)
_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,6}", fullmatch=True)


def _comparisons() -> st.SearchStrategy[q.Comparison]:
    plain = st.sampled_from(["id", "hardware"]).map(q.Field)
    attr = st.builds(q.Field, st.sampled_from(["attribute", "metadata"]), _keys)
    texts = st.one_of(plain, attr)
    equality = st.builds(
        lambda f, op, v: q.Comparison(f, op, (v,)),
        texts,
        st.sampled_from(["==", "!=", "<", ">=", "<=", ">"]),
        _values,
    )
    lists = st.builds(
        lambda f, op, vs: q.Comparison(f, op, tuple(vs)),
        st.one_of(texts, st.just(q.Field("group"))),
        st.sampled_from(["=in=", "=out="]),
        st.lists(_values, min_size=1, max_size=3),
    )
    versions = st.builds(
        lambda op, v: q.Comparison(q.Field("version"), op, (v,)),
        st.sampled_from(["<", "<=", ">", ">="]),
        st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}", fullmatch=True),
    )
    nulls = st.builds(
        lambda f, op: q.Comparison(f, op, ("null",)),
        st.one_of(st.just(q.Field("hardware")), attr),
        st.sampled_from(["=is=", "=not="]),
    )
    return st.one_of(equality, lists, versions, nulls)


_trees = st.recursive(
    _comparisons(),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: q.And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: q.Or(tuple(xs))),
    ),
    max_leaves=8,
)


@given(_trees)
def test_any_valid_query_prints_and_parses_back_to_the_same_tree(tree: q.Expression) -> None:
    assert q.parse(q.render(tree)) == tree


@given(_trees, st.sampled_from(["a", "gw-1", "", "x y"]), st.sampled_from(["1.0", "2.5.1"]))
def test_printing_does_not_change_what_a_query_selects(
    tree: q.Expression, hardware: str, version: str
) -> None:
    device = Dev(hardware=hardware, installed_version=version, attributes={"a": "1"})
    assert q.matches(q.parse(q.render(tree)), device) == q.matches(tree, device)


# ---- operator metadata (domain.metadata) ---------------------------------------------------


def test_metadata_keys_and_values_are_bounded() -> None:
    from patchgate.domain import metadata as m
    from patchgate.domain.errors import InvalidInput, NotFound

    assert m.with_entry({}, "site", "berlin") == {"site": "berlin"}
    assert m.with_entry({"site": "a"}, "site", "b") == {"site": "b"}
    for key in ("", "9lives", "with space", "a=b", "k" * 129):
        with pytest.raises(InvalidInput):
            m.with_entry({}, key, "x")
    with pytest.raises(InvalidInput, match="longer than 4000"):
        m.with_entry({}, "note", "x" * 4001)
    with pytest.raises(InvalidInput, match=r"control character \(U\+000A\) at position 3"):
        m.with_entry({}, "note", "one\ntwo")
    full = {f"k{i}": "v" for i in range(m.MAX_ENTRIES)}
    with pytest.raises(InvalidInput, match="at most 100 keys"):
        m.with_entry(full, "one_more", "v")
    assert m.with_entry(full, "k0", "changed")["k0"] == "changed"  # a change is no new key
    assert m.without_entry({"a": "1", "b": "2"}, "a", what="device x") == {"b": "2"}
    with pytest.raises(NotFound, match="device x has no metadata key 'c'"):
        m.without_entry({"a": "1"}, "c", what="device x")
    assert m.parse_pair("approved=yes=really") == ("approved", "yes=really")
    with pytest.raises(InvalidInput, match="not KEY=VALUE"):
        m.parse_pair("approved")
