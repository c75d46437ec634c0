"""The three ways metrics leave a process: HTTP ``/metrics``, a Pushgateway push, a textfile.

* ``--metrics-port N``: :func:`start_metrics_server` serves ``/metrics`` while the run
  goes on (prometheus-client's WSGI app, so content negotiation and gzip come with it).
* ``--pushgateway URL``: :func:`push_metrics` pushes once at the end of the run, grouped
  by ``job="dativo"``, ``tenant`` and ``dativo_job``, with ``POST`` semantics: families
  this run has no sample for (the last-success time of a failed run) keep the value the
  previous run pushed, so staleness alerts keep working.
* ``--metrics-file PATH``: :func:`write_metrics_file` writes the node-exporter textfile
  format atomically (a temporary file in the same folder, then ``rename``). ``{tenant}``
  and ``{job}`` in the path are replaced, so one pattern serves many jobs.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app, pushadd_to_gateway, write_to_textfile
from prometheus_client.core import Metric
from prometheus_client.exposition import basic_auth_handler, default_handler
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from dativo_plugin_sdk import ConfigurationError, DativoConnectionError
from dativo_runtime._observability._metrics import RunMetrics
from dativo_runtime._secrets import REDACTOR

__all__ = [
    "PUSH_JOB",
    "HttpEndpoint",
    "MetricsExport",
    "WsgiApp",
    "metrics_file_path",
    "push_metrics",
    "start_metrics_server",
    "write_metrics_file",
]

logger = logging.getLogger("dativo.observability")

PUSH_JOB = "dativo"
"""The Pushgateway ``job`` every push goes under (``tenant`` and ``dativo_job`` complete the group)."""

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    """A request handler that does not print one line per request on stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (stdlib signature)
        return


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class HttpEndpoint:
    """A WSGI app served from a daemon thread; close it with :meth:`close` or ``with``.

    Attributes:
        host: The address it listens on.
        port: The port it listens on (the real one when 0 was asked for).
    """

    def __init__(self, app: WsgiApp, *, host: str, port: int) -> None:
        server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
        try:
            self._server = make_server(
                host, port, app, server_class=server_class, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another port, or stop "
                "the process that holds it",
                details={"host": host, "port": port},
            ) from None
        self.host = host
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"http-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://host:port`` (``127.0.0.1`` shown for a wildcard address)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> HttpEndpoint:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def start_metrics_server(metrics: RunMetrics, port: int, *, host: str = "127.0.0.1") -> HttpEndpoint:
    """Serve ``metrics`` on ``/metrics`` in a background thread (``--metrics-port``).

    Args:
        metrics: The run's metrics.
        port: TCP port; 0 picks a free one (read it back from ``.port``).
        host: Address to listen on; this machine only by default (``0.0.0.0`` for every
            interface, so that a Prometheus elsewhere can scrape).

    Returns:
        The running endpoint; close it when the run ends.

    Raises:
        ConfigurationError: If the port cannot be bound (in use, no permission).
    """
    return HttpEndpoint(make_wsgi_app(metrics.registry), host=host, port=port)


class _JobFamilies(Collector):
    """One job's samples (and job-less ones such as cold starts), families with no sample left out.

    ``dativo-run run --job-dir`` runs several jobs with one :class:`RunMetrics`; each push
    or textfile must hold its own job's numbers only.
    """

    def __init__(self, registry: CollectorRegistry, tenant: str, job: str) -> None:
        self._registry = registry
        self._tenant = tenant
        self._job = job

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [
                s
                for s in family.samples
                if "dativo_job" not in s.labels
                or (s.labels["dativo_job"] == self._job and s.labels.get("tenant") == self._tenant)
            ]
            if kept.samples:
                yield kept


def _job_registry(metrics: RunMetrics, tenant: str, job: str) -> CollectorRegistry:
    handle = metrics.for_job(tenant, job)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_JobFamilies(metrics.registry, handle.tenant, handle.job))
    return registry


def push_metrics(
    metrics: RunMetrics,
    gateway: str,
    *,
    tenant: str,
    job: str,
    timeout: float = 10.0,
) -> None:
    """Push the run's metrics to a Pushgateway (``--pushgateway``), once, at the end of the run.

    The group is ``/metrics/job/dativo/dativo_job/<job>/tenant/<tenant>``; a push holds that
    job's samples only, and replaces the families it contains while keeping the others. Credentials in the URL
    (``https://user:password@host``) are sent as HTTP basic auth.

    Args:
        metrics: The run's metrics.
        gateway: The Pushgateway's URL, e.g. ``http://pushgateway:9091``.
        tenant: The job's tenant.
        job: The job's name.
        timeout: Seconds before giving up.

    Raises:
        DativoConnectionError: If the Pushgateway cannot be reached or refuses the push
            (retryable; the message names the URL without credentials).
    """
    parts = urlsplit(gateway if "://" in gateway else f"http://{gateway}")
    handler: Callable[..., Any] = default_handler
    if parts.username is not None:
        username, password = unquote(parts.username), unquote(parts.password or "")
        REDACTOR.add(password)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)

        def authenticating(url: str, method: str, timeout: float | None, headers: Any, data: bytes) -> Any:
            return basic_auth_handler(url, method, timeout, headers, data, username, password)

        handler = authenticating

    url = urlunsplit(parts)
    try:
        pushadd_to_gateway(
            url,
            job=PUSH_JOB,
            registry=_job_registry(metrics, tenant, job),
            grouping_key={"tenant": tenant, "dativo_job": job},
            timeout=timeout,
            handler=handler,
        )
    except OSError as exc:
        reason = REDACTOR.redact_text(str(exc))
        raise DativoConnectionError(
            f"could not push metrics to the Pushgateway at {url} ({reason}); check --pushgateway and that "
            "the Pushgateway is up (the run's own result is unaffected)",
            details={"url": url},
        ) from None


def metrics_file_path(pattern: str | Path, *, tenant: str, job: str) -> Path:
    """Return ``pattern`` with ``{tenant}`` and ``{job}`` replaced.

    Example:
        >>> str(metrics_file_path("/textfile/dativo_{tenant}_{job}.prom", tenant="acme", job="orders"))
        '/textfile/dativo_acme_orders.prom'
    """
    return Path(str(pattern).replace("{tenant}", tenant).replace("{job}", job)).expanduser()


def _previous_last_success(path: Path, *, tenant: str, job: str) -> float | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        for family in text_string_to_metric_families(text):
            if family.name != "dativo_last_success_timestamp_seconds":
                continue
            for sample in family.samples:
                if sample.labels.get("tenant") == tenant and sample.labels.get("dativo_job") == job:
                    return float(sample.value)
    except ValueError:
        return None
    return None


def write_metrics_file(metrics: RunMetrics, path: str | Path, *, tenant: str, job: str) -> Path:
    """Write the node-exporter textfile (``--metrics-file``) atomically.

    The file holds that job's samples only (give each job its own file with ``{job}``).
    When this run did not succeed, the last-success time found in the file the previous
    run left is carried over, so ``time() - dativo_last_success_timestamp_seconds`` keeps
    measuring staleness across failed runs.

    Args:
        metrics: The run's metrics.
        path: The ``.prom`` file; ``{tenant}`` and ``{job}`` are replaced.
        tenant: The job's tenant.
        job: The job's name.

    Returns:
        The path written.

    Raises:
        ConfigurationError: If the folder does not exist or cannot be written.
    """
    target = metrics_file_path(path, tenant=tenant, job=job)
    if not target.parent.is_dir():
        raise ConfigurationError(
            f"--metrics-file {str(target)!r}: folder {str(target.parent)!r} does not exist; create it, "
            "or point to the node exporter's --collector.textfile.directory",
            details={"file": str(target)},
        )
    if target.suffix != ".prom":
        logger.warning(
            "metrics file %s does not end in .prom; the node exporter only reads *.prom files", target
        )
    handle = metrics.for_job(tenant, job)
    if not _has_sample(metrics.registry, "dativo_last_success_timestamp_seconds", handle.tenant, handle.job):
        previous = _previous_last_success(target, tenant=handle.tenant, job=handle.job)
        if previous is not None:
            handle.set_last_success(previous)
    try:
        write_to_textfile(str(target), _job_registry(metrics, tenant, job))
    except OSError as exc:
        raise ConfigurationError(
            f"--metrics-file {str(target)!r} cannot be written ({exc.strerror or exc}); check the folder's "
            "permissions",
            details={"file": str(target)},
        ) from None
    return target


def _has_sample(registry: CollectorRegistry, family_name: str, tenant: str, job: str) -> bool:
    for family in registry.collect():
        if family.name == family_name:
            return any(
                s.labels.get("tenant") == tenant and s.labels.get("dativo_job") == job for s in family.samples
            )
    return False


class MetricsExport:
    """What ``dativo-run run`` does with its metrics: serve them while it runs, push and write them per job.

    Use it as a context manager around the runs and call :meth:`job_finished` after each
    job, whatever its outcome.

    Args:
        metrics: The metrics the runs record into.
        port: ``--metrics-port``: serve ``/metrics`` on this port while the runs go on.
        host: ``--metrics-host``: the address to serve on.
        pushgateway: ``--pushgateway``: push each job's metrics to this Pushgateway.
        metrics_file: ``--metrics-file``: write each job's metrics to this textfile
            (``{tenant}`` and ``{job}`` are replaced).

    Attributes:
        endpoint: The running ``/metrics`` endpoint, once entered with a port.
    """

    def __init__(
        self,
        metrics: RunMetrics,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        pushgateway: str | None = None,
        metrics_file: str | Path | None = None,
    ) -> None:
        self.metrics = metrics
        self.port = port
        self.host = host
        self.pushgateway = pushgateway
        self.metrics_file = metrics_file
        self.endpoint: HttpEndpoint | None = None

    def check(self) -> None:
        """Refuse a ``--metrics-file`` whose folder does not exist, before anything runs.

        Raises:
            ConfigurationError: Naming the folder.
        """
        if self.metrics_file is None:
            return
        folder = Path(str(self.metrics_file)).expanduser().parent
        if "{" not in str(folder) and not folder.is_dir():
            raise ConfigurationError(
                f"--metrics-file {str(self.metrics_file)!r}: folder {str(folder)!r} does not exist; create "
                "it, or point to the node exporter's --collector.textfile.directory",
                details={"option": "--metrics-file", "file": str(self.metrics_file)},
            )

    def __enter__(self) -> MetricsExport:
        self.check()
        if self.port is not None:
            self.endpoint = start_metrics_server(self.metrics, self.port, host=self.host)
            logger.info("serving metrics on %s/metrics", self.endpoint.url)
        return self

    def job_finished(self, tenant: str, job: str) -> None:
        """Push and write one job's metrics; a failure is logged, never raised (the run's result stands)."""
        if self.pushgateway is not None:
            try:
                push_metrics(self.metrics, self.pushgateway, tenant=tenant, job=job)
            except DativoConnectionError as exc:
                logger.warning("%s", exc.message, extra={"tenant": tenant, "job": job})
        if self.metrics_file is not None:
            try:
                write_metrics_file(self.metrics, self.metrics_file, tenant=tenant, job=job)
            except ConfigurationError as exc:
                logger.error("%s", exc.message, extra={"tenant": tenant, "job": job})

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
