"""``PATCHGATE_ARTIFACT_URL`` and its companions (docs/storage.md): which store each value
picks, and a readable refusal of the values that name none."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchgate.adapters.artifact_store import LocalArtifactStore
from patchgate.adapters.s3_store import S3ArtifactStore
from patchgate.bootstrap import Settings, artifact_store
from patchgate.domain.errors import InvalidInput
from tests.support import run_cli


def _settings(tmp_path: Path, **values: str | int) -> Settings:
    return Settings(data_dir=tmp_path, database_url="sqlite://", **values)  # type: ignore[arg-type]


def test_file_urls_pick_the_local_store(tmp_path: Path) -> None:
    default = artifact_store(_settings(tmp_path))
    assert isinstance(default, LocalArtifactStore)
    assert default.root == tmp_path / "artifacts"
    elsewhere = artifact_store(_settings(tmp_path, artifact_url=f"file:{tmp_path / 'blobs'}"))
    assert isinstance(elsewhere, LocalArtifactStore)
    assert elsewhere.root == tmp_path / "blobs"


def test_an_s3_url_picks_the_bucket_prefix_and_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    store = artifact_store(
        _settings(
            tmp_path,
            artifact_url="s3://fleet-artifacts/prod/eu/",
            artifact_delivery="stream",
            artifact_presign_seconds=60,
        )
    )
    assert isinstance(store, S3ArtifactStore)
    assert (store.bucket, store.prefix, store.delivery) == ("fleet-artifacts", "prod/eu/", "stream")
    assert store.key("ab" * 32) == f"prod/eu/sha256/ab/{'ab' * 32}"
    assert store.client.meta.region_name == "eu-west-3"
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"artifact_url": "ftp://host/x"}, "neither file: nor s3://BUCKET/PREFIX"),
        ({"artifact_url": "s3:///no-bucket"}, "is not s3://BUCKET/PREFIX"),
        (
            {"artifact_url": "s3://b/p", "artifact_delivery": "pigeon"},
            "PATCHGATE_ARTIFACT_DELIVERY: 'pigeon' is not one of redirect, stream",
        ),
        (
            {"artifact_url": "s3://b/p", "artifact_presign_seconds": 0},
            "PATCHGATE_ARTIFACT_PRESIGN_SECONDS must be above 0",
        ),
    ],
)
def test_values_naming_no_store_are_refused(
    tmp_path: Path, values: dict[str, str | int], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        artifact_store(_settings(tmp_path, **values))  # type: ignore[arg-type]


def test_the_cli_refuses_an_unknown_store_in_one_line(tmp_path: Path) -> None:
    result = run_cli(
        ["release", "list"],
        {"PATCHGATE_DATA_DIR": str(tmp_path), "PATCHGATE_ARTIFACT_URL": "gopher://x"},
    )
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        "error: PATCHGATE_ARTIFACT_URL: 'gopher://x' is neither file: nor s3://BUCKET/PREFIX"
    ]
