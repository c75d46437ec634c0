"""S3 (and S3-compatible stores such as MinIO): URIs, clients, and errors mapped to Dativo's.

boto3 is imported only when an ``s3://`` location is used. Every botocore failure is
mapped at this boundary: refused credentials become :class:`AuthenticationError`
(exit 77), an unreachable endpoint a retryable :class:`DativoConnectionError` (exit 75),
throttling and 5xx answers a retryable :class:`TransientError`, a missing bucket or a bad
endpoint a :class:`ConfigurationError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dativo_plugin_sdk import (
    AuthenticationError,
    ConfigurationError,
    DativoConnectionError,
    DativoError,
    RateLimitError,
    TransientError,
)

__all__ = ["S3_OPTION_KEYS", "S3Uri", "is_s3_uri", "map_s3_error", "s3_client"]

S3_OPTION_KEYS = (
    "endpoint_url",
    "region",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
)
"""Configuration keys that select and authenticate an S3 endpoint."""

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
