"""The artifact store in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, Garage…),
chosen by ``PATCHGATE_ARTIFACT_URL=s3://BUCKET/PREFIX`` (docs/storage.md).

Keys are content addresses, as in the local store: ``PREFIX/sha256/ab/abcdef…``. An upload
streams into a temporary object ``PREFIX/incoming/<random>`` by multipart upload (parts of
``PART_BYTES``; only one part is ever held in memory), hashing while it streams; once the
SHA-256 is known the object is copied server-side to its content address (or, when those
bytes are already stored, the stored object is copied onto itself, which renews its
``Last-Modified`` like the local store's touch) and the temporary object is removed. A
reader therefore never finds a partial blob under a content address.

The credentials, region and endpoint are the AWS SDK's standard variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` or
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` for a non-AWS service). Every failure to reach
the store, or a refusal of the credentials, becomes ``Unavailable`` naming the store and
the reason; a missing object becomes ``NotFound``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from patchgate.domain.errors import InvalidInput, NotFound, Unavailable
from patchgate.services.artifact_ports import (
    DELIVERIES,
    BlobHasher,
    RangeNotSatisfiable,
    RemoteArtifactStore,
    RemoteBody,
    StoredBlob,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("patchgate.artifacts")

PART_BYTES = 8 * 1024 * 1024  # S3 wants parts of 5 MiB at least (but the last)
CHUNK = 1024 * 1024
# How long a positive answer to "is the object there, with this size?" is believed before
# a redirect is issued without asking the store again.
SIZE_CACHE_SECONDS = 30.0
_MISSING = ("404", "NoSuchKey", "NotFound")


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://BUCKET/PREFIX``; the prefix ends in ``/`` unless empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise InvalidInput(f"PATCHGATE_ARTIFACT_URL: {url!r} is not s3://BUCKET/PREFIX")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _client() -> S3Client:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        region_name=region,
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        # Services other than AWS are reached by path (http://host/bucket/key): their
        # endpoints rarely have a wildcard DNS name for virtual-hosted buckets.
        s3={"addressing_style": "path" if endpoint else "auto"},
        # Checksums only where the API requires them: not every S3-compatible service
        # accepts the newer CRC headers. patchgate hashes every byte itself.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ArtifactStore(RemoteArtifactStore):
    """Blobs in ``bucket`` under ``prefix``, named by their SHA-256."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        delivery: str = "redirect",
        presign_seconds: int = 300,
        client: S3Client | None = None,
    ) -> None:
        if delivery not in DELIVERIES:
            raise InvalidInput(
                f"PATCHGATE_ARTIFACT_DELIVERY: {delivery!r} is not one of {', '.join(DELIVERIES)}"
            )
        if presign_seconds <= 0:
            raise InvalidInput("PATCHGATE_ARTIFACT_PRESIGN_SECONDS must be above 0")
        self.bucket = bucket
        self.prefix = prefix
        self.delivery = delivery
        self.presign_seconds = presign_seconds
        self.client = client or _client()
        self._sizes: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, sha256: str) -> str:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidInput(f"not a SHA-256 digest: {sha256!r}")
        return f"{self.prefix}sha256/{sha256[:2]}/{sha256}"

    @contextlib.contextmanager
    def _answering(self, what: str) -> Iterator[None]:
        """Turn the SDK's errors into patchgate's: a missing object is ``NotFound``,
        anything else that keeps the store from answering is ``Unavailable``."""
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code in _MISSING:
                raise NotFound(f"{what}: not in the artifact store {self.url}") from exc
            if code == "InvalidRange":
                raise RangeNotSatisfiable(what) from exc
            message = exc.response.get("Error", {}).get("Message") or code
            raise Unavailable(f"the artifact store {self.url} refused {what}: {message}") from exc
        except BotoCoreError as exc:
            raise Unavailable(f"the artifact store {self.url} is unreachable ({exc})") from exc

    # --- uploads ---------------------------------------------------------------------------

    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int) -> StoredBlob:
        temp = f"{self.prefix}incoming/{uuid.uuid4().hex}"
        writer = _MultipartWriter(self.client, self.bucket, temp)
        hasher = BlobHasher(max_bytes)
        try:
            with self._answering("the upload"):
                for chunk in chunks:
                    hasher.update(chunk)
                    writer.write(chunk)
                writer.finish()
                blob = hasher.blob()
                self._place(temp, blob)
            return blob
        except BaseException:
            writer.abort()
            raise
        finally:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.delete_object(Bucket=self.bucket, Key=temp)

    def _place(self, temp: str, blob: StoredBlob) -> None:
        """Copy the uploaded object to its content address (or renew the one there) and
        check that the store holds the size that was hashed."""
        final = self.key(blob.sha256)
        source = temp if self._head(final) is None else final
        self.client.copy(
            {"Bucket": self.bucket, "Key": source},
            self.bucket,
            final,
            ExtraArgs={"Metadata": {"sha256": blob.sha256}, "MetadataDirective": "REPLACE"},
        )
        stored = self._head(final)
        if stored is None or stored["ContentLength"] != blob.size:
            raise Unavailable(
                f"the artifact store {self.url} did not keep the uploaded bytes whole "
                f"({blob.size} bytes sent)"
            )
        self._remember(blob.sha256, blob.size)

    # --- reading ---------------------------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise

    def _remember(self, sha256: str, size: int) -> None:
        with self._lock:
            if len(self._sizes) > 65536:
                self._sizes.clear()
            self._sizes[sha256] = (size, time.monotonic() + SIZE_CACHE_SECONDS)

    def size(self, sha256: str) -> int | None:
        known = self._sizes.get(sha256)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        with self._answering(f"blob {sha256}"):
            head = self._head(self.key(sha256))
        if head is None:
            self._sizes.pop(sha256, None)
            return None
        self._remember(sha256, int(head["ContentLength"]))
        return int(head["ContentLength"])

    def exists(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def presigned_url(self, sha256: str, *, filename: str | None = None) -> str:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self.key(sha256)}
        if filename is not None:
            params["ResponseContentDisposition"] = f"attachment; filename*=utf-8''{quote(filename)}"
        with self._answering(f"a download link for blob {sha256}"):
            return str(
                self.client.generate_presigned_url(
                    "get_object", Params=params, ExpiresIn=self.presign_seconds
                )
            )

    def get(self, sha256: str, byte_range: str | None = None) -> RemoteBody:
        args: dict[str, str] = {"Bucket": self.bucket, "Key": self.key(sha256)}
        if byte_range is not None:
            args["Range"] = byte_range
        with self._answering(f"blob {sha256}"):
            answer = self.client.get_object(**args)  # type: ignore[arg-type]
        body = answer["Body"]
        status = int(answer["ResponseMetadata"]["HTTPStatusCode"])
        return RemoteBody(
            status=status,
            length=int(answer["ContentLength"]),
            content_range=answer.get("ContentRange") if status == 206 else None,
            chunks=self._chunks(sha256, body),
            close=contextlib.closing(body),
        )

    def _chunks(self, sha256: str, body: Any) -> Iterator[bytes]:
        with self._answering(f"blob {sha256}"):
            yield from body.iter_chunks(CHUNK)

    def open(self, sha256: str) -> Iterator[bytes]:
        remote = self.get(sha256)
        with remote.close:
            yield from remote.chunks

    # --- sweeping --------------------------------------------------------------------------

    def _listed(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield dict(item)

    def stale_blobs(self, older_than_seconds: float) -> Iterator[str]:
        """The blobs older than the age; an unreachable store is logged and lists none
        (the sweep runs at server start, which must not fail for it)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        try:
            with self._answering("listing blobs"):
                listed = [
                    str(item["Key"]).rsplit("/", 1)[-1]
                    for item in self._listed(f"{self.prefix}sha256/")
                    if item["LastModified"] <= cutoff
                ]
        except Unavailable as exc:
            log.error("ALERT artifact store: %s", exc)
            return
        yield from (name for name in listed if len(name) == 64)

    def delete_if_stale(self, sha256: str, older_than_seconds: float) -> bool:
        # S3 has no lock to share with put_stream: the age is re-read just before the
        # removal, so only an upload of the same bytes within that instant could lose its
        # blob, and the release service sweeps only blobs no release uses (docs/storage.md).
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        key = self.key(sha256)
        with self._answering(f"removing blob {sha256}"):
            head = self._head(key)
            if head is None or head["LastModified"] > cutoff:
                return False
            self.client.delete_object(Bucket=self.bucket, Key=key)
        self._sizes.pop(sha256, None)
        return True

    def sweep_temporary(self, older_than_seconds: float = 0) -> int:
        """Remove temporary objects and abort multipart uploads left by broken-off
        uploads. An unreachable store is logged, not raised: the server still starts."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        incoming = f"{self.prefix}incoming/"
        removed = 0
        try:
            with self._answering("sweeping temporary uploads"):
                for item in self._listed(incoming):
                    if item["LastModified"] <= cutoff:
                        self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                        removed += 1
                uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=incoming)
                for upload in uploads.get("Uploads", []):
                    if upload["Initiated"] <= cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
        except Unavailable as exc:
            log.error("ALERT artifact store: %s", exc)
        return removed


class _MultipartWriter:
    """Writes one object from a stream: a plain PUT when it fits in one part, else a
    multipart upload holding one part in memory at a time."""

    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        while len(self.buffer) >= PART_BYTES:
            self._send(bytes(self.buffer[:PART_BYTES]))
            del self.buffer[:PART_BYTES]

    def _send(self, part: bytes) -> None:
        if self.upload_id is None:
            started = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            self.upload_id = started["UploadId"]
        number = len(self.parts) + 1
        sent = self.client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=part,
        )
        self.parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def finish(self) -> None:
        if self.upload_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer))
        else:
            if self.buffer:
                self._send(bytes(self.buffer))
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},  # type: ignore[typeddict-item]
            )
            self.upload_id = None
        self.buffer.clear()

    def abort(self) -> None:
        if self.upload_id is not None:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )
            self.upload_id = None
