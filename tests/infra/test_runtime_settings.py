"""The Deployments and the services agree: each runtime container's rendered environment builds
the settings model its `serve` command reads, with every required field set, nothing the
service ignores, and every file it names present in the pod (injected from Vault or mounted).
"""

from __future__ import annotations

import asyncio
import os
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from contracts.config import PlatformConfig, load_from_mapping
from contracts.settings.cost import CostEngineSettings
from contracts.settings.environment import env_names
from contracts.settings.llm import LLMSettings
from contracts.settings.manager import ManagerSettings
from contracts.settings.service import ServiceSettings, TraceExporter
from contracts.settings.vault import VaultSettings
from contracts.settings.worker import WorkerSettings
from infra.plan.document import Plan, PlanResource
from infra.platform.runtime_secrets import SECRETS_DIR, vault_address
from infra.platform.tracing import COLLECTOR_SERVICE, otlp_traces_endpoint, tracing_on
from infra.platform.vault_access import secret_prefix, vault_identities
from infra.platform.workloads import PRE_STOP_SLEEP_SECONDS, runtime_workloads
from runtime.worker.handlers.llm import LLMHandler
from tests.stacks import STACKS, helm_release, stack_values

# What the image's `python -m runtime serve <command>` runs with (runtime/cli.py).
SERVE: dict[str, type[ServiceSettings]] = {
    "manager": ManagerSettings,
    "worker": WorkerSettings,
    "cost-engine": CostEngineSettings,
}
_INJECT_SECRET = "vault.hashicorp.com/agent-inject-secret-"
_DUMMY_TOKEN = "dummy-token-0123456789abcdefghijklmnop"


def _deployments(plan: Plan) -> list[PlanResource]:
    return [
        r for r in plan.resources if r.is_kubernetes_object and r.inputs["kind"] == "Deployment"
    ]


def _is_path(annotation: Any) -> bool:
    return annotation is Path or Path in typing.get_args(annotation)


def _variables(model: type[BaseSettings], *, files: bool = False) -> set[str]:
    """Every variable `model` reads (only those naming a file, with `files`)."""
    return {
        name
        for field, info in model.model_fields.items()
        if not files or _is_path(info.annotation)
        for name in env_names(model, field)
    }


def _fake_pod_name(deployment: str) -> str:
    return f"{deployment}-5d8f7c9b6-x2x7q"


def _container_env(
    deployment: PlanResource,
    model: type[ServiceSettings],
    sandbox: Path,
    extra: tuple[type[BaseSettings], ...] = (),
) -> dict[str, str]:
    """The container's environment as the kubelet would hand it over, with every file it names
    replaced by a local one (after checking the pod provides that file)."""
    meta = deployment.inputs["metadata"]
    template = deployment.inputs["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    annotations = template["metadata"].get("annotations", {})
    mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
    file_vars = _variables(model, files=True) | _variables(VaultSettings, files=True)
    for settings in extra:
        file_vars |= _variables(settings, files=True)
    env: dict[str, str] = {}
    for item in container["env"]:
        name = item["name"]
        if "valueFrom" in item:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, name
            env[name] = _fake_pod_name(meta["name"])
            continue
        value = item["value"]
        if name in file_vars:
            path = Path(value)
            if str(path.parent) == SECRETS_DIR:
                assert f"{_INJECT_SECRET}{path.name}" in annotations, (
                    f"{meta['name']}: {name}={value} is not rendered by the Vault injector"
                )
            else:
                assert any(value.startswith(m + "/") for m in mounts), (
                    f"{meta['name']}: {name}={value} is on no volume of the container"
                )
            local = sandbox / path.name
            local.write_text(_DUMMY_TOKEN + "\n")
            value = str(local)
        env[name] = value
    return env


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("AGENTOPS_") or name in ("POD_NAME", "HOSTNAME"):
            monkeypatch.delenv(name)
    return monkeypatch


def _settings_of(
    deployment: PlanResource,
    cfg: PlatformConfig,
    sandbox: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[ServiceSettings, VaultSettings, dict[str, str]]:
    name = deployment.inputs["metadata"]["name"]
    (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    command, service = container["args"]
    assert command == "serve", name
    model = SERVE[service]
    (workload,) = [w for w in runtime_workloads(cfg) if w.name == name]
    assert workload.settings is model, f"{name} is described with {workload.settings.__name__}"
    sandbox.mkdir()
    env = _container_env(deployment, model, sandbox, workload.extra_settings)
    # Only this container's variables: none left over from the previous Deployment's.
    for key in [k for k in os.environ if k.startswith("AGENTOPS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return model(), VaultSettings(), env


@pytest.mark.parametrize("stack", STACKS)
def test_each_runtime_deployment_builds_its_settings_model(
    plans: dict[str, Plan], stack: str, tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    deployments = _deployments(plans[stack])
    assert {d.inputs["metadata"]["name"] for d in deployments} == {
        w.name for w in runtime_workloads(cfg)
    }
    for d in deployments:
        name = d.inputs["metadata"]["name"]
        settings, vault, env = _settings_of(d, cfg, tmp_path / name, clean_environment)
        model = type(settings)
        # Every field the service cannot start without is set by the Deployment.
        for field, info in model.model_fields.items():
            if info.is_required():
                assert set(env_names(model, field)) & set(env), f"{name}: {field} is not set"
        # Nothing is set that the service does not read (a typo or a stale variable).
        (workload,) = [w for w in runtime_workloads(cfg) if w.name == name]
        known = _variables(model) | _variables(VaultSettings)
        for extra in workload.extra_settings:
            known |= _variables(extra)
        stray = {k for k in env if k.startswith("AGENTOPS_")} - known
        assert not stray, f"{name} sets variables its service does not read: {stray}"
        # Secrets come from files, and those files are readable.
        assert settings.redis_password() == _DUMMY_TOKEN, name
        assert settings.redis_url.password is None, name
        assert settings.environment == cfg.environment.value
        # The pod logs in to Vault as its own service account, verifying Vault with the CA —
        # or, in the mesh, through the sidecars' mTLS to Vault's plaintext listener.
        pod = d.inputs["spec"]["template"]["spec"]
        assert vault.role == pod["serviceAccountName"], name
        assert vault.url == vault_address(cfg.mesh.enabled)
        assert vault.url.startswith("http://" if cfg.mesh.enabled else "https://")
        assert vault.kv_mount == cfg.vault.kv_mount
        assert (vault.ca_file is None) is cfg.mesh.enabled
        assert vault.pod_name == _fake_pod_name(name)


@pytest.mark.parametrize("stack", STACKS)
def test_services_get_the_stack_config(
    plans: dict[str, Plan], stack: str, tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    pools = {p.name: p for p in cfg.agents.pools}
    for d in _deployments(plans[stack]):
        name = d.inputs["metadata"]["name"]
        settings, _, _ = _settings_of(d, cfg, tmp_path / name, clean_environment)
        pod = d.inputs["spec"]["template"]["spec"]
        if isinstance(settings, ManagerSettings):
            assert settings.agent_types == list(pools)
            assert settings.request_routes == cfg.agents.request_routes()
            assert settings.strategy is cfg.agents.manager.strategy
            assert settings.visibility_timeout_s == cfg.agents.manager.visibility_timeout_seconds
            assert settings.instance_id == _fake_pod_name(name)
        elif isinstance(settings, WorkerSettings):
            pool = pools[settings.agent_type]
            assert (settings.capacity, settings.weight) == (pool.capacity, pool.weight)
            assert (settings.handler, settings.model) == (pool.handler, pool.model)
            assert settings.request_types == pool.request_types
            assert settings.max_complexity == pool.max_complexity
            assert settings.agent_id == _fake_pod_name(name)
            assert settings.cost_engine_url is not None and settings.cost_token_file is not None
            # In-flight tasks finish inside the grace period, after the preStop sleep.
            (container,) = pod["containers"]
            sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert sleep == PRE_STOP_SLEEP_SECONDS
            assert 0 < settings.drain_timeout_s < pod["terminationGracePeriodSeconds"] - sleep
            if pool.provider is not None:
                # The LLM handler starts from the same environment: provider, model, key file.
                llm = LLMSettings()
                assert (str(llm.base_url), llm.model) == (str(pool.provider.base_url), pool.model)
                assert llm.api_key_file is not None
                handler = LLMHandler(llm)
                assert handler.http.headers["Authorization"] == f"Bearer {_DUMMY_TOKEN}"
                asyncio.run(handler.aclose())
        else:
            assert isinstance(settings, CostEngineSettings)
            assert settings.cost() == cfg.cost


@pytest.mark.parametrize("stack", STACKS)
def test_each_injected_file_is_readable_under_the_pods_vault_policy(
    plans: dict[str, Plan], stack: str
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    mount = cfg.vault.kv_mount
    identities = {i.name: i for i in vault_identities(cfg)}
    for d in _deployments(plans[stack]):
        template = d.inputs["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        account = template["spec"]["serviceAccountName"]
        identity = identities[account]
        assert annotations["vault.hashicorp.com/agent-inject"] == "true"
        assert annotations["vault.hashicorp.com/role"] == account
        own = f"{mount}/data/{secret_prefix(identity.name, identity.namespace)}/"
        paths = [v for k, v in annotations.items() if k.startswith(_INJECT_SECRET)]
        assert paths
        for path in paths:
            assert path.startswith(own) or f'path "{path}"' in identity.policy, (
                f"{account} is given {path} but its policy does not allow reading it"
            )


@pytest.mark.parametrize("stack", STACKS)
def test_services_export_spans_to_the_collector_where_the_stack_traces(
    plans: dict[str, Plan], stack: str, tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    # Traces by default in the AWS stacks; the local stack's config turns the pipeline off.
    assert tracing_on(cfg) is (stack != "local")
    for d in _deployments(plans[stack]):
        name = d.inputs["metadata"]["name"]
        settings, _, _ = _settings_of(d, cfg, tmp_path / name, clean_environment)
        if not tracing_on(cfg):
            assert settings.trace_exporter is TraceExporter.NONE, name
            continue
        assert settings.trace_exporter is TraceExporter.OTLP, name
        assert str(settings.otlp_endpoint) == otlp_traces_endpoint(), name
        assert settings.trace_sample_ratio == cfg.monitoring.trace_sampling_percent / 100
        # The endpoint is the Service of the collector release the plan deploys (the chart
        # names it <release>-<chart>), which exports to Jaeger.
        release = helm_release(plans[stack], "otel-collector")
        assert f"{release.inputs['name']}-{release.inputs['chart']}" == COLLECTOR_SERVICE
        pipeline = release.inputs["values"]["config"]["service"]["pipelines"]["traces"]
        assert pipeline["receivers"] == ["otlp"]
        assert pipeline["exporters"] == ["otlp/jaeger"]
