"""`policy apply` and `policy render` as an operator uses them: the data folder's
policy.toml (what `serve` puts in force at start) is replaced only when asked, with a
backup; rendered links follow PATCHGATE_PUBLIC_URL or --base-url, never a guessed port."""

from __future__ import annotations

from pathlib import Path

from patchgate.services import policy as policy_service
from patchgate.services.setup import default_policy_source
from tests.conftest import Env
from tests.support import run_cli

OTHER = default_policy_source().replace("Example Devices Ltd", "Other Devices GmbH")


def in_force_organisation(env: Env) -> str:
    return policy_service.in_force(env.ctx).policy.organisation


def test_applying_another_file_refuses_to_overwrite_policy_toml_without_replace(
    env: Env, tmp_path: Path
) -> None:
    kept = env.data_dir / "policy.toml"
    kept.write_text(default_policy_source())
    other = tmp_path / "other.toml"
    other.write_text(OTHER)
    before = in_force_organisation(env)

    refused = env.cli("policy", "apply", str(other))
    assert refused.code == 2, refused.stdout
    assert "--replace" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert kept.read_text() == default_policy_source()
    assert in_force_organisation(env) == before  # refused before anything changed

    replaced = env.cli("policy", "apply", str(other), "--replace")
    assert replaced.code == 0, replaced.stderr
    assert kept.read_text() == OTHER
    assert (env.data_dir / "policy.toml.bak").read_text() == default_policy_source()
    assert in_force_organisation(env) == "Other Devices GmbH"


def test_applying_the_kept_file_or_an_identical_one_needs_no_replace(
    env: Env, tmp_path: Path
) -> None:
    kept = env.data_dir / "policy.toml"
    kept.write_text(OTHER)
    assert env.cli("policy", "apply", str(kept)).code == 0
    same = tmp_path / "same.toml"
    same.write_text(OTHER)
    assert env.cli("policy", "apply", str(same)).code == 0
    assert not (env.data_dir / "policy.toml.bak").exists()


def test_render_links_use_the_public_url_or_the_option_never_a_guessed_port(env: Env) -> None:
    public = run_cli(
        ["policy", "render", "--format", "md"],
        {**env.vars, "PATCHGATE_PUBLIC_URL": "https://updates.example:9443"},
    )
    assert public.code == 0, public.stderr
    assert "https://updates.example:9443/policy.json" in public.stdout
    given = env.cli("policy", "render", "--format", "md", "--base-url", "http://h:9000")
    assert "http://h:9000/policy.json" in given.stdout and ":8080" not in given.stdout
    for fmt in ("md", "html"):
        neither = env.cli("policy", "render", "--format", fmt)
        assert neither.code == 0 and ":8080" not in neither.stdout
