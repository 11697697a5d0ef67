"""``frugal serve --ray``: the endpoints of a frugal.yaml as a Ray Serve application.

One deployment per model version (ray_replicas.ModelReplica, autoscaled by the model's
``autoscaling`` policy through ray_autoscaling.py), one ingress deployment (frugal's own ASGI
app) behind Serve's HTTP proxy, and one ledger writer actor. What must be shared between
replicas is checked before anything starts: the cache (Redis) and the ledger (the writer).
Ray does the rest (placement, routing, replicas); frugal grows no cluster manager.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from frugal.accounting import Pricer, resolve_pricer
from frugal.config import FrugalConfig, ModelConfig
from frugal.errors import ConfigError
from frugal.scale.policies import policy_from_config
from frugal.scale.ray_autoscaling import RayScaling, ray_scaling, replica_concurrency

log = logging.getLogger("frugal.scale")
APP_NAME = "frugal"
INGRESS_NAME = "frugal-ingress"
WRITER_NAME = "frugal-ledger-writer"


@dataclass(frozen=True, slots=True)
class RayOptions:
    """How to reach Ray and lay out the ingress (the models' layout comes from frugal.yaml)."""

    address: Literal["auto", "local"] | str = "auto"  # auto: a running cluster; local: start one
    host: str = "127.0.0.1"
    port: int = 8000
    ingress_replicas: int = 1
    ingress_cpus: float = 0.5  # each ingress replica's share of the instance: its overhead


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """A model version's deployment: its name in Serve, CPUs per replica and scaling."""

    key: str
    deployment: str
    cpus: float
    scaling: RayScaling


def deployment_name(model: ModelConfig) -> str:
    return "model-" + re.sub(r"[^A-Za-z0-9_.-]", "-", f"{model.name}-{model.version}")


def check_shared_state(config: FrugalConfig, file: str = "") -> None:
    """Refuse what replicas cannot share: a cache in one process's memory or on one disk.

    Every ingress replica must see the others' entries (a hit on one after a miss on
    another), so an endpoint's cache is Redis, or off."""
    for index, endpoint in enumerate(config.endpoints):
        cache = endpoint.cache
        if cache is None or not cache.enabled or cache.store == "redis":
            continue
        raise ConfigError(
            f"cache store {cache.store!r} is not shared between Ray replicas",
            field=f"endpoints[{index}].cache.store", file=file,
            hint="set `store: redis` with a `redis_url` every node reaches, or "
            "`enabled: false` (see docs/ray.md)",
        )  # fmt: skip


def plan_models(config: FrugalConfig, pricer: Pricer) -> list[ModelPlan]:
    """Each local model version's deployment: a replica holds ``batching.workers`` slots of
    the instance, so its CPUs are that share of the instance's vCPUs."""
    plans = []
    for model in config.local_models:
        workers = model.batching.workers
        cpus = pricer.cpus * min(1.0, workers / pricer.slots)
        scaling = ray_scaling(
            policy_from_config(model.autoscaling),
            concurrency=replica_concurrency(workers, model.batching.max_batch_size),
            max_queue=model.batching.max_queue,
        )
        plans.append(ModelPlan(model.key, deployment_name(model), cpus, scaling))
    return plans


def check_fits(plans: list[ModelPlan], options: RayOptions, cluster_cpus: float) -> None:
    """Refuse a layout whose first replicas cannot all be placed: Serve would wait forever."""
    wanted = options.ingress_cpus * options.ingress_replicas + sum(
        p.cpus * int(p.scaling.autoscaling_config["initial_replicas"]) for p in plans
    )
    if wanted > cluster_cpus + 1e-9:
        raise ConfigError(
            f"the first replicas need {wanted:g} CPUs; the Ray cluster has {cluster_cpus:g}",
            field="models[].autoscaling.initial_replicas",
            hint="lower initial/min replicas or batching.workers, --ingress-cpus, or add nodes",
        )


def build_application(
    config: FrugalConfig, options: RayOptions, writer: Any, ledger_path: str = ""
) -> Any:
    """The Serve application: the ingress bound to a handle of each model deployment."""
    from ray import serve

    from frugal.scale.ray_replicas import IngressReplica, ModelReplica, ReplicaSpec

    pricer = resolve_pricer(config.instance)
    make: Any = serve.deployment  # Ray's overloads type a class argument as a decorator's
    handles = {}
    for plan in plan_models(config, pricer):
        deployment = make(ModelReplica).options(
            name=plan.deployment, ray_actor_options={"num_cpus": plan.cpus},
            **plan.scaling.deployment_options(),
        )  # fmt: skip
        spec = ReplicaSpec(plan.cpus, writer, ledger_path)
        handles[plan.key] = deployment.bind(config, plan.key, spec)
    ingress = make(serve.ingress()(IngressReplica)).options(
        name=INGRESS_NAME, num_replicas=options.ingress_replicas,
        ray_actor_options={"num_cpus": options.ingress_cpus},
        max_ongoing_requests=max(100, config.server.max_concurrency or 0),
    )  # fmt: skip
    return ingress.bind(config, handles, ReplicaSpec(options.ingress_cpus, writer, ledger_path))


@dataclass(slots=True)
class RayDeployment:
    """A running deployment: its URL, and how to stop it (the ledger's run ends then)."""

    url: str
    writer: Any

    def stop(self) -> None:
        import ray
        from ray import serve

        serve.delete(APP_NAME)  # replicas drain and flush their rows to the writer first
        if self.writer is not None:
            ray.get(self.writer.close.remote())
            ray.kill(self.writer)


def start(
    config: FrugalConfig,
    options: RayOptions,
    *,
    file: str = "",
    after_init: Callable[[], None] = lambda: None,
) -> RayDeployment:
    """Deploy onto Ray (connecting or starting it per ``options.address``) and return once
    every replica is up; the caller stops it. ``after_init`` runs once Ray is connected (Ray
    installs its own signal handlers there: the caller's go in after them)."""
    from frugal.serving import assemble

    check_shared_state(config, file)
    # What `frugal serve` checks before its port opens (ledger and keys paths, prices, every
    # model's sha256 and load), here, so a bad artifact is one clear error, not a replica
    # that fails in Ray's logs. On several nodes this checks the head's copy of each file.
    pricer = assemble(config, file=file).pricer
    plans = plan_models(config, pricer)
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise ConfigError("--ray needs the ray extra", hint="pip install 'frugal[ray]'") from exc
    if not ray.is_initialized():
        try:
            ray.init(address=None if options.address == "local" else options.address,
                     include_dashboard=False)  # fmt: skip
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"cannot reach Ray at --address {options.address}: {exc}",
                hint="start a cluster with `ray start --head` (then --address auto), or "
                "pass --address local to start one in this process",
            ) from exc
    after_init()
    cluster_cpus = float(ray.cluster_resources().get("CPU", 0.0))  # type: ignore[no-untyped-call]
    try:
        check_fits(plans, options, cluster_cpus)
    except ConfigError as exc:
        if options.address == "local":  # a cluster started here cannot grow: Serve would hang
            raise
        # A running cluster may have an autoscaler (KubeRay) that adds nodes when Serve asks.
        log.warning("%s; waiting for the cluster's autoscaler to add nodes", exc)
    writer: Any = None
    ledger_path = str(Path(config.ledger.path).resolve())
    if config.ledger.enabled and config.ledger.url is None:  # ledger.url: replicas open it
        from frugal.scale.ray_ledger import LedgerWriter

        actor: Any = ray.remote(LedgerWriter)
        writer = actor.options(name=WRITER_NAME, num_cpus=0).remote(
            ledger_path, flush_interval_ms=config.ledger.flush_interval_ms,
            heartbeat_s=config.ledger.heartbeat_s,
        )  # fmt: skip
    deployment = RayDeployment(f"http://{options.host}:{options.port}", writer)
    try:
        serve.start(http_options={"host": options.host, "port": options.port})
        serve.run(build_application(config, options, writer, ledger_path), name=APP_NAME,
                  route_prefix="/", blocking=False)  # fmt: skip
    except Exception as exc:  # a replica failed to start, the port is taken, ...
        with contextlib.suppress(Exception):
            deployment.stop()
        raise ConfigError(
            f"Ray Serve could not start the deployment: {exc}",
            hint="the replicas' logs are under /tmp/ray/session_latest/logs/serve/",
        ) from exc
    return deployment


def serve_on_ray(config_path: Path, options: RayOptions, *, insecure: bool = False) -> None:
    """``frugal serve --ray``: deploy, say where, and serve until SIGINT/SIGTERM; then the
    replicas drain, the ledger's rows are flushed and its run is stamped stopped."""
    import signal
    import threading

    from frugal.config import load_config
    from frugal.serving.server import check_exposure

    config = load_config(config_path)
    check_exposure(config, options.host, insecure=insecure, file=str(config_path))
    stop = threading.Event()

    def on_signals() -> None:  # a signal during start-up stops the deployment once it is up
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())

    deployment = start(config, options, file=str(config_path), after_init=on_signals)
    print(f"frugal on Ray Serve: {deployment.url} (Ctrl-C stops it)", flush=True)
    stop.wait()
    deployment.stop()


__all__ = [
    "ModelPlan",
    "RayDeployment",
    "RayOptions",
    "build_application",
    "check_fits",
    "check_shared_state",
    "deployment_name",
    "plan_models",
    "serve_on_ray",
    "start",
]
