"""``s3://bucket/prefix``: an S3-compatible object store (AWS S3, MinIO, ...) through boto3.

URL: ``s3://bucket/some/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1``. The endpoint
may also come from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``; credentials and (absent
``region=``) the region come from boto3's default chain (``AWS_ACCESS_KEY_ID``/
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, config files, instance roles). With an explicit
endpoint, path-style addressing is used, as self-hosted servers expect. Optional URL parameters
``connect_timeout``, ``read_timeout`` (seconds) and ``attempts`` (total tries of idempotent
requests) tune failure detection.

Conditional writes map onto ``PutObject`` headers: ``If-None-Match: *`` to create and
``If-Match: "<etag>"`` to replace. A lost condition comes back as ``412 PreconditionFailed``, or
as ``409 ConditionalRequestConflict`` when a concurrent conditional write on the key was in
flight; both raise :class:`ConditionFailed`, as does ``If-Match`` on an absent key (AWS
answers ``404 NoSuchKey``). Conditional PUTs are sent exactly once (no botocore retries):
a retry after a write that landed but whose response was lost would report a false
``PreconditionFailed``, so an ambiguous outcome surfaces as :class:`StoreUnavailable` instead
and the caller re-reads. Timeouts are short and retries few, so an outage surfaces within
seconds (refused connections at once; a hung server after ``read_timeout`` per attempt). Every
other failure (5xx, throttling, auth, missing bucket) is :class:`StoreUnavailable` carrying the
S3 error code, never :class:`ObjectNotFound`. ETags are returned without quotes. One store, one pair of boto3 clients, safe to
share between threads.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any, NoReturn

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from botocore.handlers import add_expect_header

from .base import ConditionFailed, ListPage, ObjectNotFound, ObjectStore, StoreError, StoreUnavailable

# S3 compares keys as UTF-8 bytes; this is the greatest code point, used to skip past a
# common prefix when a listing resumes after one.
_MAX_CHAR = "\U0010ffff"
_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


def _unquote(etag: str) -> str:
    return etag.strip('"')


def _check_key(key: str) -> None:
    # Same key rules as the file backend, so both backends accept exactly the same keys.
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
        raise ValueError(f"invalid object key {key!r}")


class S3Store(ObjectStore):
    """Objects are ``s3://bucket/<prefix><key>``; keys are given and listed without the prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        attempts: int = 2,
    ) -> None:
        if not bucket:
            raise ValueError("S3 store needs a bucket")
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        endpoint_url = (
            endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        )
        self.endpoint_url = endpoint_url
        session = boto3.session.Session(region_name=region)  # sessions are not thread-safe; clients are
        self.region = session.region_name or "us-east-1"
        query = {"region": self.region}
        if endpoint_url:
            query["endpoint"] = endpoint_url
        self.url = f"s3://{bucket}/{prefix}?{urllib.parse.urlencode(query, safe=':/')}"

        def client(total_attempts: int) -> Any:
            config = botocore.config.Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"mode": "standard", "total_max_attempts": total_attempts},
                max_pool_connections=64,
                s3={"addressing_style": "path"} if endpoint_url else None,
                # Every object carries a SHA-256 in its manifest, checked on read; the extra
                # CRC botocore would compute and send for each PUT buys nothing here.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            c = session.client("s3", endpoint_url=endpoint_url, region_name=self.region, config=config)
            # Objects are small (segments, manifests, snapshots up to tens of MiB), so
            # "Expect: 100-continue" only adds a round trip per PUT (and breaks empty bodies
            # against Go servers, boto/botocore#3755).
            c.meta.events.unregister("before-call.s3", add_expect_header)
            return c

        self._client = client(max(1, attempts))  # idempotent requests
        self._cas_client = client(1)  # conditional PUTs: exactly one try, see module docstring

    @classmethod
    def from_url(cls, url: str) -> S3Store:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"S3 store URL must be s3://bucket/prefix: {url!r}")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        known = {"endpoint", "region", "connect_timeout", "read_timeout", "attempts"}
        if unknown := set(query) - known:
            raise ValueError(f"unknown S3 store URL parameter(s) {sorted(unknown)} in {url!r}")
        return cls(
            parsed.netloc,
            urllib.parse.unquote(parsed.path),
            endpoint_url=query.get("endpoint"),
            region=query.get("region"),
            connect_timeout=float(query.get("connect_timeout", 2.0)),
            read_timeout=float(query.get("read_timeout", 10.0)),
            attempts=int(query.get("attempts", 2)),
        )

    # -- helpers -------------------------------------------------------------------------

    def _fail(self, exc: Exception, key: str, *, missing: type[StoreError] | None = None) -> NoReturn:
        """Translate a boto3 failure; ``missing`` is what a 404 means for this operation."""
        if isinstance(exc, ParamValidationError):
            raise ValueError(str(exc)) from exc
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if missing is not None and (code in _NOT_FOUND or (status == 404 and code != "NoSuchBucket")):
                raise missing(key) from None
            if code in _CONFLICT or status in (409, 412):
                raise ConditionFailed(f"{key}: {code or status}") from None
            raise StoreUnavailable(f"s3 {self.bucket}/{self.prefix}{key}: {code or status}: {exc}") from exc
        raise StoreUnavailable(f"s3 {self.bucket}/{self.prefix}{key}: {type(exc).__name__}: {exc}") from exc

    # -- interface -----------------------------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        _check_key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            with response["Body"] as body:
                data = body.read()
        except (BotoCoreError, ClientError, OSError) as exc:
            self._fail(exc, key, missing=ObjectNotFound)
        return data, _unquote(response["ETag"])

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        if if_match is not None and if_none_match:
            raise ValueError("if_match and if_none_match are exclusive")
        _check_key(key)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + key, "Body": data}
        client = self._client
        if if_none_match:
            args["IfNoneMatch"] = "*"
            client = self._cas_client
        elif if_match is not None:
            args["IfMatch"] = f'"{_unquote(if_match)}"'
            client = self._cas_client
        try:
            response = client.put_object(**args)
        except (BotoCoreError, ClientError, OSError) as exc:
            # If-Match on an absent key: the condition failed (AWS says 404 NoSuchKey).
            self._fail(exc, key, missing=ConditionFailed if if_match is not None else None)
        return _unquote(response["ETag"])

    def delete(self, key: str) -> None:
        _check_key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except (BotoCoreError, ClientError, OSError) as exc:
            try:
                self._fail(exc, key, missing=ObjectNotFound)
            except ObjectNotFound:
                return

    def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = None,
        start_after: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self.prefix + prefix,
            "MaxKeys": max(1, min(limit, 1000)),
        }
        if delimiter:
            args["Delimiter"] = delimiter
        if start_after is not None:
            resume = start_after
            rest = start_after[len(prefix) :] if start_after.startswith(prefix) else ""
            if delimiter and delimiter in rest:
                # start_after lies inside (or is) a common prefix already returned: every key
                # under it rolls up into that prefix, so resume after all of them.
                resume = prefix + rest.split(delimiter, 1)[0] + delimiter + _MAX_CHAR
            args["StartAfter"] = self.prefix + resume
        try:
            response = self._client.list_objects_v2(**args)
        except (BotoCoreError, ClientError, OSError) as exc:
            self._fail(exc, prefix)
        cut = len(self.prefix)
        contents = response.get("Contents", [])
        keys = [obj["Key"][cut:] for obj in contents]
        sizes = [int(obj.get("Size", 0)) for obj in contents]
        prefixes = [p["Prefix"][cut:] for p in response.get("CommonPrefixes", [])]
        last = max(keys[-1:] + prefixes[-1:], default=None)
        if start_after is not None:
            prefixes = [p for p in prefixes if p > start_after]
        truncated = bool(response.get("IsTruncated")) and last is not None
        return ListPage(keys=keys, prefixes=prefixes, next_cursor=last if truncated else None, sizes=sizes)

    def close(self) -> None:
        self._client.close()
        self._cas_client.close()
