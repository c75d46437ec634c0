"""S3 (and S3-compatible stores such as MinIO): the options, URIs, clients, errors and :class:`S3Storage`.

boto3 is imported only when an ``s3://`` location is used. Every botocore failure is
mapped at this boundary: refused credentials become :class:`AuthenticationError`
(exit 77), an unreachable endpoint a retryable :class:`DativoConnectionError` (exit 75),
throttling and 5xx answers a retryable :class:`TransientError`, a missing bucket or a bad
endpoint a :class:`ConfigurationError`.

:data:`S3_OPTION_KEYS` and :func:`s3_options` are the one definition of which configuration
keys select and authenticate an endpoint: the connectors, the job model and the engine all
take S3 options from a config through :func:`s3_options`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dativo_plugin_sdk import (
    AuthenticationError,
    ConfigurationError,
    DativoConnectionError,
    DativoError,
    RateLimitError,
    TransientError,
)
from dativo_runtime._storage._base import FileInfo, Storage

__all__ = ["S3_OPTION_KEYS", "S3Storage", "S3Uri", "is_s3_uri", "map_s3_error", "s3_client", "s3_options"]

S3_OPTION_KEYS = (
    "endpoint_url",
    "region",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
)
"""Configuration keys that select and authenticate an S3 endpoint."""


def s3_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Take the S3 options out of a connector's or a job's configuration.

    Args:
        config: Any configuration mapping (a parquet target's, a file reader's...).

    Returns:
        The keys of :data:`S3_OPTION_KEYS` that ``config`` sets to a non-empty value.

    Example:
        >>> s3_options({"path": "s3://b/x", "region": "eu-west-1", "endpoint_url": ""})
        {'region': 'eu-west-1'}
    """
    return {key: config[key] for key in S3_OPTION_KEYS if config.get(key)}


_AUTH_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidSecurity",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
    "UnrecognizedClientException",
}
_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}


def is_s3_uri(value: str) -> bool:
    """Tell whether ``value`` is an ``s3://`` URI."""
    return value.lower().startswith("s3://")


@dataclass(frozen=True)
class S3Uri:
    """A bucket and a key (or key prefix) parsed from ``s3://bucket/key``."""

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Parse ``s3://bucket/key``.

        Raises:
            ConfigurationError: If it is not an ``s3://`` URI with a bucket name.
        """
        match = re.match(r"^s3://([^/]+)/?(.*)$", uri.strip(), re.IGNORECASE)
        if not match or not match.group(1):
            raise ConfigurationError(
                f"{uri!r} is not an S3 URI; write s3://bucket/prefix", details={"uri": uri}
            )
        return cls(bucket=match.group(1), key=match.group(2))

    def child(self, *parts: str) -> S3Uri:
        """Return the URI of a key below this one."""
        pieces = [self.key.strip("/")] + [p.strip("/") for p in parts]
        return S3Uri(self.bucket, "/".join(p for p in pieces if p))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def s3_client(options: Mapping[str, Any]) -> Any:
    """Create a boto3 S3 client from connector options.

    Args:
        options: ``endpoint_url``, ``region``, ``aws_access_key_id``,
            ``aws_secret_access_key``, ``aws_session_token`` (all optional: boto3's usual
            chain of environment variables and profiles fills the gaps), and
            ``connect_timeout`` / ``read_timeout`` in seconds, ``max_attempts`` for
            botocore's own retries.

    Returns:
        A botocore S3 client.

    Raises:
        ConfigurationError: If the endpoint URL is malformed.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=float(options.get("connect_timeout", 5)),
        read_timeout=float(options.get("read_timeout", 60)),
        retries={"total_max_attempts": int(options.get("max_attempts", 3)), "mode": "standard"},
        s3={"addressing_style": "path" if options.get("endpoint_url") else "auto"},
    )
    kwargs: dict[str, Any] = {"config": config}
    if options.get("endpoint_url"):
        kwargs["endpoint_url"] = str(options["endpoint_url"])
    if options.get("region"):
        kwargs["region_name"] = str(options["region"])
    for key in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
        if options.get(key):
            kwargs[key] = str(options[key])
    try:
        return boto3.session.Session().client("s3", **kwargs)
    except ValueError as exc:
        raise ConfigurationError(
            f"cannot create an S3 client: {exc}; check endpoint_url (e.g. http://localhost:9000) and region",
            details={"endpoint_url": options.get("endpoint_url")},
        ) from None


def map_s3_error(exc: BaseException, *, action: str, uri: str, endpoint: str | None = None) -> DativoError:
    """Map a botocore exception to the Dativo error an operator can act on.

    Args:
        exc: What botocore raised.
        action: What was being done, e.g. ``"listing"`` or ``"writing"``.
        uri: The S3 location involved.
        endpoint: The configured endpoint URL, for messages.

    Returns:
        The error to raise (``raise map_s3_error(...) from exc``).
    """
    from botocore import exceptions as bx

    where = f"{uri}" + (f" at {endpoint}" if endpoint else "")
    details: dict[str, Any] = {"uri": uri, "endpoint_url": endpoint, "action": action}
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return AuthenticationError(
            f"no S3 credentials for {action} {where}: set aws_access_key_id and aws_secret_access_key in the "
            "config (from ${...} secrets) or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment",
            details=details,
        )
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        details.update({"s3_error_code": code, "http_status": status})
        if code in _AUTH_CODES or status in (401, 403):
            return AuthenticationError(
                f"S3 refused the credentials while {action} {where} ({code or status}); check "
                "aws_access_key_id / aws_secret_access_key and the bucket policy",
                details=details,
            )
        if code == "NoSuchBucket":
            return ConfigurationError(
                f"bucket {S3Uri.parse(uri).bucket!r} does not exist{' at ' + endpoint if endpoint else ''}; "
                "create it or fix the path",
                details=details,
            )
        if code in _THROTTLE_CODES or status == 429:
            return RateLimitError(
                f"S3 is throttling requests while {action} {where} ({code})", details=details
            )
        if status >= 500 or code in ("InternalError", "ServiceUnavailable", "RequestTimeout"):
            return TransientError(
                f"S3 failed while {action} {where} ({code or status}); retry", details=details
            )
        return DativoError(
            f"S3 answered {code or status} while {action} {where}: {error.get('Message', '')}".rstrip(": "),
            error_code="STORAGE_ERROR",
            details=details,
        )
    if isinstance(exc, bx.ParamValidationError):
        return ConfigurationError(f"invalid S3 request while {action} {where}: {exc}", details=details)
    if isinstance(exc, (bx.ConnectionError, bx.HTTPClientError)):
        return DativoConnectionError(
            f"cannot reach S3 while {action} {where}: {type(exc).__name__}; check endpoint_url and the "
            "network",
            details=details,
        )
    if isinstance(exc, bx.BotoCoreError):
        return DativoError(
            f"S3 client error while {action} {where}: {exc}", error_code="STORAGE_ERROR", details=details
        )
    if isinstance(exc, OSError):
        return DativoConnectionError(f"I/O error while {action} {where}: {exc}", details=details)
    return DativoError(
        f"unexpected error while {action} {where}: {type(exc).__name__}: {exc}",
        error_code="STORAGE_ERROR",
        details=details,
    )


class S3Storage(Storage):
    """A prefix in an S3 bucket (any S3-compatible endpoint).

    Args:
        root: ``s3://bucket/prefix``.
        options: ``endpoint_url``, ``region`` and credentials (see :func:`s3_client`).
    """

    def __init__(self, root: str, options: Mapping[str, Any] | None = None) -> None:
        self.root = S3Uri.parse(root)
        self.options = dict(options or {})
        self.endpoint = self.options.get("endpoint_url")
        self._client: Any = None

    @property
    def uri(self) -> str:
        return str(self.root).rstrip("/")

    @property
    def client(self) -> Any:
        """The boto3 client, created on first use."""
        if self._client is None:
            self._client = s3_client(self.options)
        return self._client

    def key(self, path: str) -> str:
        """The object key of a relative path."""
        return self.root.child(path).key

    def _error(self, exc: BaseException, action: str, path: str) -> DativoError:
        return map_s3_error(exc, action=action, uri=self.location(path), endpoint=self.endpoint)

    @staticmethod
    def _code(exc: BaseException) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def read_bytes(self, path: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.root.bucket, Key=self.key(path))
            data: bytes = response["Body"].read()
            return data
        except Exception as exc:
            if self._code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._error(exc, "reading", path) from exc

    def write_bytes(self, path: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.root.bucket, Key=self.key(path), Body=data)
        except Exception as exc:
            raise self._error(exc, "writing", path) from exc

    def create_exclusive(self, path: str, data: bytes) -> bool:
        try:
            self.client.put_object(Bucket=self.root.bucket, Key=self.key(path), Body=data, IfNoneMatch="*")
        except Exception as exc:
            if self._code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise self._error(exc, "writing", path) from exc
        return True

    def replace_if_unchanged(self, path: str, data: bytes, token: str) -> bool:
        try:
            self.client.put_object(Bucket=self.root.bucket, Key=self.key(path), Body=data, IfMatch=token)
        except Exception as exc:
            if self._code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
                return False
            raise self._error(exc, "writing", path) from exc
        return True

    def stat(self, path: str) -> FileInfo | None:
        try:
            head = self.client.head_object(Bucket=self.root.bucket, Key=self.key(path))
        except Exception as exc:
            if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(exc, "inspecting", path) from exc
        modified = head["LastModified"]
        return FileInfo(path, int(head["ContentLength"]), int(modified.timestamp() * 1e9), str(head["ETag"]))

    def list_files(self, prefix: str = "") -> Iterator[FileInfo]:
        key_prefix = self.key(prefix)
        base = self.root.key.strip("/")
        if prefix and not key_prefix.endswith("/"):
            # A prefix names a folder unless an object has exactly that key.
            single = self.stat(prefix)
            if single is not None:
                yield single
                return
            key_prefix += "/"
        elif not prefix and base:
            key_prefix = base + "/"
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.root.bucket, Prefix=key_prefix):
                for item in page.get("Contents", []):
                    rel = item["Key"][len(base) + 1 :] if base else item["Key"]
                    yield FileInfo(
                        rel, int(item["Size"]), int(item["LastModified"].timestamp() * 1e9), str(item["ETag"])
                    )
        except DativoError:
            raise
        except Exception as exc:
            raise self._error(exc, "listing", prefix) from exc

    def delete(self, path: str) -> None:
        try:
            self.client.delete_object(Bucket=self.root.bucket, Key=self.key(path))
        except Exception as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                return
            raise self._error(exc, "deleting", path) from exc

    def delete_tree(self, prefix: str) -> None:
        keys = [self.key(info.path) for info in self.list_files(prefix)]
        try:
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                self.client.delete_objects(
                    Bucket=self.root.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
        except Exception as exc:
            raise self._error(exc, "deleting", prefix) from exc

    def move(self, source: str, destination: str) -> None:
        try:
            self.client.copy(
                {"Bucket": self.root.bucket, "Key": self.key(source)}, self.root.bucket, self.key(destination)
            )
        except Exception as exc:
            raise self._error(exc, "publishing", destination) from exc
        self.delete(source)

    def upload(self, local_file: Path, path: str) -> None:
        try:
            self.client.upload_file(str(local_file), self.root.bucket, self.key(path))
        except Exception as exc:
            raise self._error(exc, "uploading", path) from exc
        finally:
            with contextlib.suppress(OSError):
                local_file.unlink()

    def open_input(self, path: str) -> IO[bytes]:
        try:
            response = self.client.get_object(Bucket=self.root.bucket, Key=self.key(path))
        except Exception as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                raise ConfigurationError(
                    f"object {self.location(path)} does not exist", details={"uri": self.location(path)}
                ) from None
            raise self._error(exc, "reading", path) from exc
        body: IO[bytes] = response["Body"]
        return body

    def check_writable(self) -> None:
        """Check the bucket and the credentials first (their own errors), then write a probe."""
        self.check_bucket()
        super().check_writable()

    def check_bucket(self) -> None:
        """Check the bucket exists and the credentials are accepted.

        Raises:
            AuthenticationError: Credentials refused.
            DativoConnectionError: Endpoint unreachable.
            ConfigurationError: Bucket missing.
        """
        try:
            self.client.head_bucket(Bucket=self.root.bucket)
        except Exception as exc:
            if self._code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise ConfigurationError(
                    f"bucket {self.root.bucket!r} does not exist"
                    + (f" at {self.endpoint}" if self.endpoint else "")
                    + "; create it or fix the path",
                    details={"uri": self.uri, "endpoint_url": self.endpoint},
                ) from None
            raise self._error(exc, "checking", "") from exc
