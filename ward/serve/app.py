"""The application builder: ``import_path: ward.serve.app:build_app`` in serve_configs/*.yaml.

``build_app(args)`` validates the ward configuration (the YAML's ``args``) strictly before anything
starts: unknown keys, wrong types, unreadable weights or duplicate bed ids raise one
:class:`~ward.config.ConfigError` naming every bad key. It then binds

    coordinator = Coordinator(config)
    WardAPI(config, coordinator, Pose(model, coordinator), VSViG(model, coordinator))

with resources, replicas and batching taken from the ward config (``resources``, ``batching``).
Deployments reach each other only through these bound handles, never by looking a name up: the
model replicas report their batch statistics to ``coordinator``, and the WardAPI's
:class:`~ward.serve.supervisor.Supervisor` hands all three handles to every camera actor.
Batching lives in ``user_config`` so ``serve deploy`` with new values retunes it without restarts.

Note: a ``deployments:`` section in the Serve YAML overrides these options, and its
``ray_actor_options`` replace the whole dict (set num_cpus, num_gpus and resources together).

Secrets never travel in what Serve stores: the bound config is ``cfg.model_dump()``, which carries the
database URL's *reference* (``database.url_env`` / ``url_file``), never the resolved URL; each replica
resolves it itself (``cfg.database.url``). Before binding, the running Serve's ``http_options`` are
checked against ``api``: a proxy on a non-loopback host needs TLS (``ssl_certfile``/``ssl_keyfile``)
unless ``api.allow_plain_http_on_network``, and ``api.tls_cert`` needs Serve's TLS too.

Before binding it prepares the database once (:func:`prepare_database`): migrations, then the first
admin account. ``build_app`` runs once per deploy, before any replica starts (``serve run CONFIG``
runs it in a Ray task of the Serve controller, ``serve.run(build_app(...))`` in the caller), so the
Coordinator and WardAPI replicas find the schema at head and never migrate concurrently, and the
admin exists before the WardAPI adds its dashboard service account.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from ray.serve import Application

from ward.config import ConfigError, DeploymentResources, WardConfig, is_loopback, load_ward_config

log = logging.getLogger("ward.serve")

__all__ = ["ConfigError", "build_app", "check_http_options", "deployment_options", "prepare_database"]


def _actor_options(r: DeploymentResources) -> dict[str, Any]:
    opts: dict[str, Any] = {"num_cpus": r.num_cpus}
    if r.num_gpus:
        opts["num_gpus"] = r.num_gpus
    if r.resources:
        opts["resources"] = dict(r.resources)
    return opts


def deployment_options(cfg: WardConfig) -> dict[str, dict[str, Any]]:
    """Serve options per deployment (pure: what build_app applies, also used by tests and docs)."""
    r, b = cfg.resources, cfg.batching
    opts = {}
    for name, res, batch in (("Pose", r.pose, b.pose), ("VSViG", r.vsvig, b.vsvig)):
        opts[name] = {"num_replicas": res.replicas, "ray_actor_options": _actor_options(res),
                      "user_config": batch.model_dump(),
                      # a replica never holds more than max_ongoing_requests, which would cap the batch
                      "max_ongoing_requests": max(16, 2 * batch.max_batch_size)}
    return opts


def _model_args(cfg: WardConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    r = cfg.resources
    pose = {"path": cfg.models.pose.path, "config": cfg.models.pose.config,
            "refinement_stages": cfg.models.pose.refinement_stages, "input_height": cfg.models.pose.input_height,
            "backend": cfg.models.pose.backend, "precision": cfg.models.pose.precision,
            "device": r.pose.device, "num_cpus": r.pose.num_cpus}
    vsvig = {"path": cfg.models.vsvig.path, "variant": cfg.models.vsvig.variant,
             "graph_mode": cfg.models.vsvig.graph_mode, "partition_order": cfg.models.vsvig.partition_order,
             "backend": cfg.models.vsvig.backend, "precision": cfg.models.vsvig.precision,
             "device": r.vsvig.device, "num_cpus": r.vsvig.num_cpus}
    return pose, vsvig


def prepare_database(url: str) -> None:
    """Migrate the ward's database to head and create the first admin account if no person has one.

    Both are serialised by the database's setup lock, so a second ward (or CLI) starting at the same
    time neither migrates twice nor makes a second admin. A bad $WARD_ADMIN_USER/$WARD_ADMIN_PASSWORD
    raises ConfigError (the deploy fails with that message)."""
    from ward.dashboard.auth import BootstrapError, bootstrap_admin  # noqa: PLC0415
    from ward.store import Store  # noqa: PLC0415

    store = Store(url)  # migrates (under the setup lock) when behind head
    try:
        bootstrap_admin(store, logger=log)
    except BootstrapError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        store.close()


def check_http_options(cfg: WardConfig, http: Any) -> None:
    """Refuse a Serve HTTP proxy that would serve the API in clear text on the network, or without the
    TLS the ward config names (``http``: Serve's HTTPOptions, or anything with host/ssl_certfile)."""
    host, cert = getattr(http, "host", None), getattr(http, "ssl_certfile", None)
    problems = []
    if host and not cert and not is_loopback(host) and not cfg.api.allow_plain_http_on_network:
        problems.append(f"Serve's http_options.host is {host!r} (reachable from the network) without ssl_certfile/"
                        "ssl_keyfile: set them to api.tls_cert/api.tls_key, bind 127.0.0.1, or set "
                        "api.allow_plain_http_on_network: true behind a TLS-terminating proxy on this host")
    if cfg.api.tls and not cert:
        problems.append("api.tls_cert is set but Serve's http_options has no ssl_certfile: set http_options "
                        "ssl_certfile and ssl_keyfile to the same files as api.tls_cert and api.tls_key")
    if problems:
        raise ConfigError("Serve's HTTP proxy does not match the ward's api settings:\n  " + "\n  ".join(problems),
                          problems)


def _serve_http_options() -> Any:
    """The running Serve's HTTPOptions, or None where there is no Serve controller to ask (it never
    starts Ray: Serve's client would, when called without one)."""
    try:
        import ray  # noqa: PLC0415
        from ray.serve.context import _get_global_client  # noqa: PLC0415

        if not ray.is_initialized():
            return None
        client = _get_global_client(raise_if_no_controller_running=False)
        return client.http_config if client is not None else None
    except Exception as exc:  # noqa: BLE001 - no Ray/Serve here (unit use): the config checks still applied
        log.debug("no Serve HTTP options to check: %s", exc)
        return None


def build_app(args: Mapping[str, Any] | WardConfig) -> Application:
    """Validate the ward config, prepare the database, bind the ward's deployments (ConfigError first)."""
    from ward.serve.api import WardAPI  # noqa: PLC0415
    from ward.serve.coordinator import Coordinator  # noqa: PLC0415
    from ward.serve.deployments import Pose, VSViG  # noqa: PLC0415

    if args is None:
        raise ConfigError("build_app needs the ward configuration as `args:` in the Serve config "
                          "(beds, models, database, ...); see serve_configs/ward.yaml")
    cfg = load_ward_config(args, validate_paths=True)  # weights must exist; paths made absolute
    http = _serve_http_options()
    if http is not None:
        check_http_options(cfg, http)
    prepare_database(cfg.database.url)
    config = cfg.model_dump(mode="json")  # the database URL's reference only, never the resolved URL
    opts = deployment_options(cfg)
    pose_model, vsvig_model = _model_args(cfg)
    coordinator = Coordinator.bind(config)
    pose = Pose.options(**opts["Pose"]).bind(pose_model, coordinator)
    vsvig = VSViG.options(**opts["VSViG"]).bind(vsvig_model, coordinator)
    return WardAPI.bind(config, coordinator, pose, vsvig)
