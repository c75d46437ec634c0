"""A connection to PostgreSQL over ADBC, and the driver's failures mapped to Dativo errors.

``adbc-driver-postgresql`` (the runtime extra ``dativo-runtime[postgres]``) is imported
here only, and only when a connection opens. Every message that leaves this module has the
password masked: libpq's own messages never print it, but a DSN written into an error would.

Failures, by what a retry can fix:

* a password refused, an unknown role: :class:`~dativo_plugin_sdk.AuthenticationError` (77);
* an unknown database, table or column, SQL the server refuses: :class:`ConfigurationError` (2);
* the server unreachable, the connection lost, a server shutting down:
  :class:`~dativo_plugin_sdk.ConnectionError` (retryable, 75).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import AuthenticationError, ConfigurationError, DativoConnectionError, DativoError
from dativo_runtime.connectors._options import PostgresOptions

__all__ = ["PostgresConnection", "connection_uri", "map_driver_error", "masked"]

_INSTALL = "pip install 'dativo-runtime[postgres]'"
# libpq's connection failures carry no SQLSTATE; their text is all there is to tell them apart.
_AUTH_PATTERNS = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "role .* does not exist",
    "pg_hba.conf rejects",
)
_CONFIG_PATTERNS = ('database ".*" does not exist', "invalid connection option", "invalid uri")
# SQLSTATE classes: 08 connection exception, 57P admin shutdown, 53 insufficient resources.
_RETRYABLE_SQLSTATES = ("08", "57P", "53", "40001", "40P01")
_AUTH_SQLSTATES = ("28",)


def connection_uri(options: PostgresOptions) -> str:
    """The libpq URI of the options: ``dsn`` as written, else one built from its parts."""
    if options.dsn:
        return options.dsn
    user = urllib.parse.quote(options.user or "", safe="")
    password = urllib.parse.quote(options.password or "", safe="")
    auth = f"{user}:{password}@" if options.password else (f"{user}@" if user else "")
    host = options.host or "localhost"
    dbname = urllib.parse.quote(options.dbname or "", safe="")
    if host.startswith("/"):  # the folder of the server's unix socket
        socket = urllib.parse.urlencode({"host": host, "port": options.port})
        return f"postgresql://{auth}/{dbname}?{socket}"
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"postgresql://{auth}{host}:{options.port}/{dbname}"


def _password_of(options: PostgresOptions) -> str | None:
    if options.password:
        return options.password
    if options.dsn:
        with contextlib.suppress(ValueError):
            parsed = urllib.parse.urlsplit(options.dsn)
            if parsed.password:
                return urllib.parse.unquote(parsed.password)
        match = re.search(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", options.dsn)
        if match:
            return match.group(1).strip("'")
    return None


def masked(text: str, options: PostgresOptions) -> str:
    """``text`` with the connection's password (plain and URI-quoted) replaced by ``***``."""
    password = _password_of(options)
    if password:
        for form in {password, urllib.parse.quote(password, safe="")}:
            text = text.replace(form, "***")
    return text


def _where(options: PostgresOptions) -> str:
    """The server and database, for messages (never the password)."""
    if options.dsn:
        with contextlib.suppress(ValueError):
            parsed = urllib.parse.urlsplit(options.dsn)
            if parsed.scheme.startswith("postgres"):
                return f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}{parsed.path or '/'}"
        return "the dsn's server"
    return f"{options.host or 'localhost'}:{options.port}/{options.dbname or ''}"


def _clean(message: str) -> str:
    """The driver's message on one line, without its ``IO: [libpq]`` prefix or the query echo."""
    message = message.split("\nQuery was:", maxsplit=1)[0]
    message = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", message.strip())
    message = re.sub(r"^Failed to (prepare query|execute query|connect): ", "", message)
    message = re.sub(r"\b(ERROR|FATAL):\s+", "", message)
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not line.startswith(("LINE ", "^")) and set(line) != {"^"}]
    return " ".join(kept)


def map_driver_error(exc: BaseException, options: PostgresOptions, *, doing: str) -> DativoError:
    """The Dativo error for a driver failure, with the server's own message, password masked.

    Args:
        exc: What the ADBC driver raised.
        options: The connection's options (to mask its password, to name its server).
        doing: What was being done (``connecting``, ``reading public.orders``).

    Returns:
        An :class:`AuthenticationError`, a :class:`ConfigurationError` or a retryable
        :class:`DativoConnectionError` (anything not recognised as the user's mistake).
    """
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    text = masked(_clean(str(exc)), options)
    where = _where(options)
    details: dict[str, Any] = {"server": where}
    if sqlstate:
        details["sqlstate"] = sqlstate
    lowered = text.lower()
    if sqlstate.startswith(_AUTH_SQLSTATES) or any(re.search(p, lowered) for p in _AUTH_PATTERNS):
        return AuthenticationError(
            f"PostgreSQL at {where} refused the credentials while {doing}: {text}; check user and password",
            details=details,
        )
    if any(re.search(p, lowered) for p in _CONFIG_PATTERNS):
        return ConfigurationError(
            f"PostgreSQL at {where}: {text} (while {doing}); check dsn or dbname", details=details
        )
    if sqlstate and not sqlstate.startswith(_RETRYABLE_SQLSTATES):
        return ConfigurationError(f"PostgreSQL at {where} refused {doing}: {text}", details=details)
    return DativoConnectionError(f"cannot reach PostgreSQL at {where} while {doing}: {text}", details=details)


def _driver() -> Any:
    try:
        # Imported by name: the driver ships no type information.
        return importlib.import_module("adbc_driver_postgresql.dbapi")
    except ImportError:
        raise ConfigurationError(
            "the postgres reader needs the ADBC PostgreSQL driver, which is not installed; "
            f"install it with: {_INSTALL}",
            details={"install": _INSTALL},
        ) from None


class PostgresConnection:
    """One ADBC connection, in autocommit mode; snapshots are explicit transactions.

    Args:
        options: The reader's options.
    """

    def __init__(self, options: PostgresOptions) -> None:
        self.options = options
        dbapi = _driver()
        uri = connection_uri(options)
        if "connect_timeout" not in uri:
            if uri.startswith(("postgres://", "postgresql://")):
                uri = f"{uri}{'&' if '?' in uri else '?'}connect_timeout={options.connect_timeout}"
            else:  # a key=value dsn
                uri = f"{uri} connect_timeout={options.connect_timeout}"
        try:
            self._conn = dbapi.connect(uri, autocommit=True)
        except Exception as exc:
            raise map_driver_error(exc, options, doing="connecting") from None

    def close(self) -> None:
        """Close the connection (safe to call twice)."""
        with contextlib.suppress(Exception):
            self._conn.close()

    def __enter__(self) -> PostgresConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, *, doing: str) -> Any:
        """Run ``sql``; the returned ADBC cursor streams its result (``fetch_record_batch``)."""
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql)
        except Exception as exc:
            with contextlib.suppress(Exception):
                cursor.close()
            raise map_driver_error(exc, self.options, doing=doing) from None
        return cursor

    def rows(self, sql: str, *, doing: str) -> list[dict[str, Any]]:
        """The (small) result of a catalog query as Python rows."""
        cursor = self.execute(sql, doing=doing)
        try:
            rows: list[dict[str, Any]] = cursor.fetch_arrow_table().to_pylist()
        except Exception as exc:
            raise map_driver_error(exc, self.options, doing=doing) from None
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
        return rows

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[PostgresConnection]:
        """A read-only REPEATABLE READ transaction: every query inside sees one snapshot."""
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", doing="starting a snapshot").close()
        try:
            yield self
        finally:
            with contextlib.suppress(Exception):
                self.execute("ROLLBACK", doing="ending the snapshot").close()
