"""Which backend runs a plugin: the job's wish, the mode, and the operator's policy.

* The mode a job runs in is the stricter of two: ``cloud`` when the operator's policy
  (``sandbox.mode``) or the job (``mode``) says ``cloud``, else ``self_hosted``. A job file
  cannot lower the operator's ``cloud``; a job may ask for ``cloud`` for itself under a
  ``self_hosted`` policy. Without a policy file (or without ``mode`` in it) the policy's mode
  is ``self_hosted``, so the job's ``mode`` decides, as before. An operator who runs other
  people's plugins must set ``mode: cloud`` in the policy: the job's ``mode`` is written by
  the tenant.
* ``cloud`` mode sandboxes every plugin that is not a built-in connector: a job may pick
  ``process`` or ``docker`` (or ``auto``, the strongest available), never ``none``. It
  denies network egress unless the operator's policy says ``allow_network: true``, and
  caps every limit: at the policy's ceilings, else at :data:`CLOUD_DEFAULT_CEILINGS`.
* ``self_hosted`` mode sandboxes by default too (``auto``); a job may choose ``none`` to
  run a trusted plugin in-process. When ``auto`` finds no working backend the run fails
  with a ``SandboxError`` saying how to install one or opt in to ``none``; it never falls
  back to in-process silently. Limits have no ceilings beyond the policy's, and egress is
  allowed unless the policy says ``allow_network: false``.
* Built-in connectors (``csv``, ``jsonl``, ``parquet``) are the runtime's own, trusted code
  and always run in-process (they may need the runtime's S3 credentials and egress); the
  job's ``sandbox`` block applies to its plugins.
* The operator's runtime configuration (:class:`OperatorPolicy`, read from the YAML or
  JSON file named by ``DATIVO_RUNTIME_CONFIG``) sets the mode and may restrict the allowed
  backends, pin one, cap every limit and forbid network egress. A job asking for more
  fails with a ``ConfigurationError`` naming the setting and both numbers.

The operator's policy file and its ceilings are :mod:`._operator_policy`; this module
makes the choice those rules govern.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dativo_plugin_sdk import ConfigurationError, DativoError, SandboxError
from dativo_runtime._plugins._ref import PluginRef, is_trusted_builtin
from dativo_runtime._sandbox._base import Sandbox, SandboxLimits
from dativo_runtime._sandbox._operator_policy import (
    BACKEND_NAMES,
    CLOUD_DEFAULT_CEILINGS,
    ISOLATED_BACKENDS,
    MODES,
    RUNTIME_CONFIG_ENV,
    OperatorPolicy,
    check_mode,
)

__all__ = [
    "BACKEND_NAMES",
    "CLOUD_DEFAULT_CEILINGS",
    "MODES",
    "RUNTIME_CONFIG_ENV",
    "OperatorPolicy",
    "choose_sandbox",
    "run_mode",
    "should_sandbox_plugin",
]


def _check_request(requested: str) -> None:
    if requested not in BACKEND_NAMES:
        raise ConfigurationError(
            f"unknown sandbox.backend {requested!r}; use one of {', '.join(BACKEND_NAMES)}",
            details={"setting": "sandbox.backend", "value": requested},
        )


def should_sandbox_plugin(
    mode: str,
    requested: str,
    ref: PluginRef,
    policy: OperatorPolicy | None = None,
) -> bool:
    """Tell whether the plugin must run outside the host process.

    Args:
        mode: The job's ``mode`` (``self_hosted`` or ``cloud``); the policy's ``cloud`` overrides it.
        requested: The job's ``sandbox.backend``.
        ref: The plugin reference.
        policy: The operator's policy (its mode and a pinned backend may force a sandbox);
            :meth:`OperatorPolicy.load` when omitted.

    Returns:
        ``True`` when the plugin must be sandboxed.

    Raises:
        ConfigurationError: If the mode or backend name is unknown.
    """
    check_mode(mode, "mode")
    _check_request(requested)
    if is_trusted_builtin(ref, cloud=True):
        return False
    policy = policy if policy is not None else OperatorPolicy.load()
    if policy.effective_mode(mode) == "cloud":
        return True
    if is_trusted_builtin(ref):
        return False
    if policy.pinned_backend is not None:
        return policy.pinned_backend != "none"
    return requested != "none"


def _backend_class(name: str) -> type[Sandbox]:
    if name == "process":
        from dativo_runtime._sandbox.bubblewrap._backend import BubblewrapSandbox

        return BubblewrapSandbox
    if name == "docker":
        from dativo_runtime._sandbox.docker._backend import DockerSandbox

        return DockerSandbox
    from dativo_runtime._sandbox._inprocess import InProcessSandbox

    return InProcessSandbox


def _instantiate(name: str, policy: OperatorPolicy, ceilings: SandboxLimits) -> Sandbox:
    if name == "docker":
        from dativo_runtime._sandbox.docker._backend import DEFAULT_IMAGE, DockerSandbox

        return DockerSandbox(image=policy.docker_image or DEFAULT_IMAGE, ceilings=ceilings)
    if name == "process":
        from dativo_runtime._sandbox.bubblewrap._backend import BubblewrapSandbox

        return BubblewrapSandbox(ceilings=ceilings)
    return _backend_class(name)()


def _availability(name: str, policy: OperatorPolicy) -> tuple[bool, str]:
    if name == "docker":
        from dativo_runtime._sandbox.docker._backend import DockerSandbox

        return DockerSandbox.image_availability(policy.docker_image)
    return _backend_class(name).availability()


def run_mode(job_mode: str, policy: OperatorPolicy | None = None) -> str:
    """The mode a job runs in, for reports: the stricter of the policy's and the job's.

    A policy that cannot be loaded yields the job's own mode; the run or the check that uses
    the policy reports that error.
    """
    try:
        return (policy if policy is not None else OperatorPolicy.load()).effective_mode(job_mode)
    except DativoError:
        return job_mode


def choose_sandbox(
    mode: str,
    requested: str,
    ref: PluginRef,
    policy: OperatorPolicy | None = None,
    *,
    limits: SandboxLimits | None = None,
    read_only_paths: Sequence[Path] = (),
) -> Sandbox:
    """Return the backend that will run ``ref``.

    Args:
        mode: The job's ``mode`` (``self_hosted`` or ``cloud``); the job runs in ``cloud``
            mode when either it or the policy says so (:meth:`OperatorPolicy.effective_mode`).
        requested: The job's ``sandbox.backend`` (``auto``, ``process``, ``docker``, ``none``).
        ref: The plugin reference.
        policy: The operator's policy; :meth:`OperatorPolicy.load` (``DATIVO_RUNTIME_CONFIG``) when omitted.
        limits: The job's limits, checked against the ceilings of its mode.
        read_only_paths: The job's ``sandbox.read_only_paths``, checked against the policy and the mode.

    Returns:
        A backend instance; call its ``open_reader``/``open_writer``.

    Raises:
        ConfigurationError: If the job asks for something the mode or the operator forbids
            (``none`` in cloud mode, a backend not allowed, a limit above a ceiling, egress
            or read-only host paths that are not allowed).
        SandboxError: If the backend it must use does not work on this machine (the
            message says why and how to fix it).
    """
    check_mode(mode, "mode")
    _check_request(requested)
    policy = policy if policy is not None else OperatorPolicy.load()
    job_mode, mode = mode, policy.effective_mode(mode)
    if limits is not None:
        policy.check_limits(limits, job_mode)
    policy.check_read_only_paths(read_only_paths, job_mode)
    ceilings = policy.ceilings(mode)
    where = f" ({policy.source})" if policy.source else ""
    if is_trusted_builtin(ref, cloud=mode == "cloud"):
        return _instantiate("none", policy, ceilings)
    if policy.pinned_backend is not None:
        pinned = policy.pinned_backend
        if requested not in ("auto", pinned):
            raise ConfigurationError(
                f"the job asks for sandbox.backend {requested!r}, but the operator's policy{where} pins "
                f"every plugin to {pinned!r}; remove sandbox.backend or set it to 'auto' or {pinned!r}",
                details={"requested": requested, "pinned": pinned},
            )
        if pinned == "none" and mode == "cloud":
            raise ConfigurationError(
                f"cloud mode never runs plugins in-process ({policy.cloud_reason(job_mode)}), but "
                f"the operator's policy{where} pins every plugin to 'none'; the job cannot run here",
                details={"setting": "mode", "mode": mode, "pinned": pinned},
            )
        requested = pinned
    if requested == "none":
        if mode == "cloud":
            raise ConfigurationError(
                f"cloud mode always sandboxes plugins ({policy.cloud_reason(job_mode)}), so "
                f"sandbox.backend 'none' is not allowed for {ref.ref!r}; use 'auto', 'process' or 'docker'",
                details={
                    "setting": "sandbox.backend",
                    "mode": mode,
                    "job_mode": job_mode,
                    "policy_mode": policy.mode,
                    "policy": policy.source,
                },
            )
        if "none" not in policy.allowed_backends:
            raise ConfigurationError(
                f"the operator's policy{where} does not allow running plugins in-process (sandbox.backend "
                f"'none'); allowed: {', '.join(policy.allowed_backends)}",
                details={"requested": "none", "allowed_backends": list(policy.allowed_backends)},
            )
        return _instantiate("none", policy, ceilings)
    if requested != "auto":
        if requested not in policy.allowed_backends:
            raise ConfigurationError(
                f"the operator's policy{where} does not allow sandbox backend {requested!r}; allowed: "
                f"{', '.join(policy.allowed_backends)}",
                details={"requested": requested, "allowed_backends": list(policy.allowed_backends)},
            )
        available, why = _availability(requested, policy)
        if not available:
            raise SandboxError(
                f"sandbox backend {requested!r} requested for {ref.ref!r} does not work on this machine: "
                f"{why}. "
                "Run 'dativo-run sandbox doctor' for details.",
                details={"reason": "startup_failed", "backend": requested, "why": why},
            )
        return _instantiate(requested, policy, ceilings)
    reasons: list[str] = []
    for name in ISOLATED_BACKENDS:
        if name not in policy.allowed_backends:
            reasons.append(f"{name}: not allowed by the operator's policy")
            continue
        available, why = _availability(name, policy)
        if available:
            return _instantiate(name, policy, ceilings)
        reasons.append(f"{name}: {why}")
    opt_in = (
        " For a trusted plugin, set sandbox.backend: none in the job to run it in-process."
        if mode == "self_hosted" and "none" in policy.allowed_backends
        else ""
    )
    raise SandboxError(
        f"no sandbox backend works on this machine, so plugin {ref.ref!r} cannot run in {mode} mode "
        f"({'; '.join(reasons)}). Install bubblewrap, or start Docker and run 'dativo-run sandbox "
        f"build-image'; 'dativo-run sandbox doctor' shows what is missing.{opt_in}",
        details={"reason": "startup_failed", "backend": "auto", "why": reasons},
    )
