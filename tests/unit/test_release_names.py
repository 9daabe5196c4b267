"""Pure rules of release names: artifact file names and TUF target paths."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain.errors import InvalidInput
from patchgate.services.releases import check_filename, target_path

SAFE_PATH = re.compile(r"^[a-z0-9][a-z0-9._+-]*/[A-Za-z0-9._+~-]+/[A-Za-z0-9._+-]+$")


@given(st.text(min_size=1, max_size=80))
def test_an_accepted_file_name_never_contains_a_path_or_a_control_character(name: str) -> None:
    try:
        check_filename(name)
    except InvalidInput:
        return
    assert "/" not in name and "\\" not in name
    assert name not in (".", "..")
    assert all(ch.isprintable() or ch == " " for ch in name)


@given(
    st.text(alphabet=string.ascii_letters + " -", min_size=1, max_size=30),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,20}", fullmatch=True),
    st.text(min_size=1, max_size=40).filter(lambda n: "/" not in n and "\\" not in n),
)
def test_a_target_path_is_url_safe_with_exactly_product_version_and_file(
    product: str, version: str, filename: str
) -> None:
    path = target_path(product, version, filename)
    assert path.count("/") == 2
    assert path.split("/")[1] == version
    assert SAFE_PATH.match(path), path


@pytest.mark.parametrize("name", ["../x", "/etc/x", "x\x00", "x\x1b[31m", "x\u202e"])
def test_path_and_control_character_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_filename(name)


def test_demo_gateway_targets_live_under_a_slug_of_the_product() -> None:
    assert target_path("Demo Gateway", "1.0.1", "fw 1.img") == "demo-gateway/1.0.1/fw_1.img"
