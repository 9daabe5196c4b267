"""TUF verification of what DDI offers, with python-tuf's ``ngclient.Updater``.

The device trusts exactly one thing on first contact: the root metadata it was provisioned
with (``--trusted-root``). From it the Updater walks root rotations, then timestamp,
snapshot and targets (TUF client workflow, specification §5.3–5.6), all fetched through the
same ``httpx.Client`` as DDI. The DDI chunk names its TUF target (metadata key
``tuf_target``); the agent asks the Updater for that target's signed length and hashes and
for its ``custom`` fields, and checks the downloaded bytes against them before a single
byte reaches a slot.

Signed ``custom`` fields read here (all optional):

- ``version``: the release version the target carries;
- ``security_version``: an integer for the anti-rollback rule;
- ``hardware``: a model name or a list of them the image fits;
- ``security_floor``: set by the server when a campaign for this target completed; the
  device raises its floor to it once it runs the target.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from tuf.api import exceptions as tuf_exceptions

# Imported from where they are defined: tuf.api.metadata re-exports them implicitly,
# which mypy --strict does not accept.
from tuf.api._payload import Root, TargetFile
from tuf.api.metadata import Metadata
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from patchgate.agent.errors import TrustError, TrustUnavailable

__all__ = [
    "HttpxFetcher",
    "SignedTarget",
    "TrustError",
    "TrustStore",
    "TrustUnavailable",
    "check_trusted_root",
]


class HttpxFetcher(FetcherInterface):
    """python-tuf's fetcher interface on top of our ``httpx.Client``."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            response = self.client.get(url)
        except httpx.TransportError as exc:
            raise tuf_exceptions.DownloadError(f"{url}: {exc}") from exc
        if response.status_code >= 400:
            raise tuf_exceptions.DownloadHTTPError(
                f"{url}: HTTP {response.status_code}", response.status_code
            )
        return iter([response.content])


def check_trusted_root(data: bytes | None) -> bytes:
    """The provisioned root, if it is root metadata signed by a threshold of its own keys
    (TUF §5.2: the trusted root is the starting point); :class:`TrustError` otherwise."""
    if not data:
        raise TrustError("the trusted root is missing or empty")
    try:
        root = Metadata[Root].from_bytes(data)
        root.verify_delegate(Root.type, root)
    except Exception as exc:  # any parse or signature problem means: do not start
        raise TrustError(f"the trusted root is not valid root metadata: {exc}") from exc
    return data


@dataclass(frozen=True)
class SignedTarget:
    """What the signed targets metadata says of one target."""

    path: str
    info: TargetFile

    @property
    def custom(self) -> Mapping[str, Any]:
        custom = self.info.custom
        return custom if isinstance(custom, Mapping) else {}

    @property
    def length(self) -> int:
        return self.info.length

    @property
    def sha256(self) -> str | None:
        return self.info.hashes.get("sha256")

    @property
    def security_version(self) -> int:
        try:
            return int(self.custom.get("security_version", 0))
        except (TypeError, ValueError):
            return 0

    @property
    def security_floor(self) -> int | None:
        value = self.custom.get("security_floor")
        try:
            return None if value is None else int(value)
        except (TypeError, ValueError):
            return None

    @property
    def hardware(self) -> tuple[str, ...]:
        value = self.custom.get("hardware")
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        return ()

    def verify(self, path: str) -> None:
        """The file's length and hashes match the signed ones (TUF §5.7.3)."""
        with open(path, "rb") as handle:
            try:
                self.info.verify_length_and_hashes(handle)
            except tuf_exceptions.LengthOrHashMismatchError as exc:
                raise TrustError(f"{self.path}: {exc}") from exc


class TrustStore:
    """The device's TUF client state in ``{state_dir}/tuf``."""

    def __init__(self, state_dir: str, server: str, trusted_root: bytes, client: httpx.Client):
        self.metadata_dir = os.path.join(state_dir, "tuf")
        os.makedirs(self.metadata_dir, exist_ok=True)
        self.server = server.rstrip("/")
        self.trusted_root = check_trusted_root(trusted_root)
        self.client = client

    def _updater(self) -> Updater:
        # A fresh Updater per check: ngclient refreshes once per instance (§5.3.1).
        # Bootstrapping from the provisioned root each time means nothing cached on the
        # device can widen trust; rotations are re-walked from it (N+1.root.json).
        return Updater(
            metadata_dir=self.metadata_dir,
            metadata_base_url=f"{self.server}/tuf/metadata/",
            target_base_url=f"{self.server}/tuf/targets/",
            fetcher=HttpxFetcher(self.client),
            bootstrap=self.trusted_root,
        )

    def target(self, path: str) -> SignedTarget:
        """The signed description of ``path``; :class:`TrustError` if the metadata does not
        verify or does not list it."""
        try:
            updater = self._updater()
            updater.refresh()
            info = updater.get_targetinfo(path)
        except tuf_exceptions.DownloadError as exc:
            raise TrustUnavailable(f"TUF metadata could not be fetched: {exc}") from exc
        except tuf_exceptions.RepositoryError as exc:
            raise TrustError(f"TUF metadata does not verify: {exc}") from exc
        if info is None:
            raise TrustError(f"target {path} is not in the signed targets metadata")
        return SignedTarget(path, info)
