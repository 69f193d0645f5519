"""``{namespace}--{profile}`` is unambiguous: every valid pair maps to one name and back.

The proof is two properties: ``split(profile_database(ns, p)) == (ns, p)`` for every pair the
builder accepts (so the builder is injective: two pairs with one name would split to both),
and ``profile_database(*split(name)) == name`` for every name the parser accepts (so each
profile database name has exactly one pair). The alphabets are small and '-'-heavy so that
hypothesis reaches the troublesome cases ('acme-' + 'x' against 'acme' + '-x') quickly.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from memoturn.errors import BadRequest
from memoturn.names import check_database_name, check_namespace, is_part, profile_database, split_profile_database

_TRICKY = "ab1-_."
parts = st.one_of(
    st.text(_TRICKY, min_size=1, max_size=8),
    st.from_regex(r"[a-z0-9](?:[a-z0-9_.-]{0,61}[a-z0-9])?", fullmatch=True),
).filter(is_part)
anything = st.text(_TRICKY + "\n", max_size=12)


@settings(max_examples=300)
@given(parts, parts)
def test_every_valid_pair_maps_to_one_database_name_and_back(namespace, profile):
    name = profile_database(namespace, profile)
    assert split_profile_database(name) == (namespace, profile)
    assert name.count("--") == 1
    assert check_database_name(name) == name  # and it is a database name the node accepts


@settings(max_examples=500)
@given(anything, anything)
@example("acme-", "x")
@example("acme", "-x")
@example("acme", "x--y")
@example("acme--x", "y")
@example("a" * 64, "x")
def test_no_other_pair_yields_the_same_name(namespace, profile):
    """Whatever two strings are offered, the builder either refuses them or makes a name that
    splits back to exactly them: no second pair can reach one name."""
    try:
        name = profile_database(namespace, profile)
    except BadRequest as exc:
        assert exc.type == "invalid-name"
        assert not (is_part(namespace) and is_part(profile))
        return
    assert split_profile_database(name) == (namespace, profile)


@settings(max_examples=1000)
@given(st.text(_TRICKY + "\n", max_size=20))
@example("acme---x")
@example("acme--x--y")
@example("acme--x\n")
def test_a_name_that_splits_has_exactly_that_pair(name):
    split = split_profile_database(name)
    if split is not None:
        assert profile_database(*split) == name


@settings(max_examples=200)
@given(parts, parts, parts, parts)
def test_distinct_pairs_get_distinct_names(ns1, p1, ns2, p2):
    assert (profile_database(ns1, p1) == profile_database(ns2, p2)) == ((ns1, p1) == (ns2, p2))


def test_the_prefix_attack_names():
    with pytest.raises(BadRequest):
        profile_database("acme-", "x")
    with pytest.raises(BadRequest):
        profile_database("acme", "-x")
    with pytest.raises(BadRequest):
        check_namespace("acme-")
    assert split_profile_database("acme---x") is None  # neither 'acme' + '-x' nor 'acme-' + 'x'
    assert split_profile_database("acme--x--y") is None
    assert split_profile_database("acme-b--x") == ("acme-b", "x")
    assert split_profile_database("acme") is None
    assert split_profile_database("acme--") is None
    assert split_profile_database("--x") is None


@pytest.mark.parametrize("bad", ["", "Acme", "acme-", "-acme", "ac--me", "ac..me", "acme\n", "a" * 64, "ac/me", "_a"])
def test_invalid_namespaces_are_refused(bad):
    with pytest.raises(BadRequest) as info:
        check_namespace(bad)
    assert info.value.type == "invalid-name"


@pytest.mark.parametrize("good", ["a", "acme", "acme-b", "a_b", "a.b", "a__b", "a-_b", "0", "a" * 63])
def test_valid_namespaces_are_accepted(good):
    assert check_namespace(good) == good


def test_database_names_refuse_a_trailing_newline():
    with pytest.raises(BadRequest):
        check_database_name("acme--x\n")
