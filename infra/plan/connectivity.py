"""The connectivity report: the independent analyzers' verdicts over a stack's plan, compared
with its flow table, written by `agentops plan` as `connectivity.json` beside `plan.json`.

Three evaluators, each reading the rendered manifests (not our generators):

- np-guard's netpol-analyzer over the NetworkPolicies (infra/plan/netpol.py): flows of the table
  allowed and refused, pairs of workloads denied, connections allowed that no flow carries;
- Istio's authorization semantics (infra/plan/istio_authz.py): the decision for every request
  of every flow the mesh sees;
- `istioctl analyze --use-kube=false` over the mesh config: its findings.

The Go analyzers are built once by `scripts/ensure-go-tool` and cached; the plan uses them when
they are there and says so in the report when they are not (it never builds them). The tests in
tests/flows run the same functions, building the tools when needed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from contracts.config import PlatformConfig
from infra.plan.istio_authz import Decision, MeshConfig, Request, decide
from infra.plan.netpol import Analysis, analyze, compare, write_inputs
from infra.plan.runner import REPO_ROOT
from infra.platform.flows import Flow, Network, Workload, flows, networks, workloads
from infra.platform.mesh_policies import CALLER_JWT_HEADER, ROOT_NAMESPACE
from infra.platform.names import enabled_namespaces

__all__ = [
    "REPO_ROOT",
    "TOOLS",
    "VERDICT_FILE",
    "FlowDecision",
    "IstioctlResult",
    "flow_decisions",
    "flow_requests",
    "go_tool",
    "istioctl_inputs",
    "locate",
    "mesh_config",
    "netpol_analysis",
    "report",
    "run_istioctl",
    "summary",
    "write_report",
]

VERDICT_FILE: Final = "connectivity.json"
# The Go analyzers and the variable that names a binary instead of the cache (scripts/dev test).
TOOLS: Final = {"netpol": "AGENTOPS_NETPOL_BIN", "istioctl": "AGENTOPS_ISTIOCTL_BIN"}


# ---- the tools ---------------------------------------------------------------------------------


def locate(tool: str, *, build: bool) -> Path | str:
    """The analyzer's binary, or why there is none. `build`: build it when it is not cached
    (minutes the first time); else only what scripts/ensure-go-tool built before."""
    configured = os.environ.get(TOOLS[tool])
    if configured:
        path = Path(configured)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        return f"{TOOLS[tool]}={configured} is not an executable file"
    proc = subprocess.run(  # noqa: S603 - our own script, argv list
        [str(REPO_ROOT / "scripts" / "ensure-go-tool"), *([] if build else ["--cached"]), tool],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    if proc.returncode == 0 and proc.stdout.strip():
        return Path(proc.stdout.strip().splitlines()[-1])
    reason = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return reason.removeprefix("ensure-go-tool: ")


def go_tool(tool: str) -> Path:
    """The analyzer's binary, built when needed; RuntimeError when it cannot be."""
    found = locate(tool, build=True)
    if isinstance(found, str):
        raise RuntimeError(f"{tool}: {found}")
    return found


# ---- NetworkPolicies: np-guard's analyzer ---------------------------------------------------


def netpol_analysis(cfg: PlatformConfig, manifests: Path, work: Path, binary: Path) -> Analysis:
    """The analyzer's connectivity over the rendered manifests, matched with the flow table."""
    table = flows(cfg)
    inputs = write_inputs(manifests, work, table)
    owned = {ns.value for ns in enabled_namespaces(cfg)}
    return compare(analyze(binary, inputs), inputs, table, owned, networks(cfg)["nodes"])


# ---- istioctl analyze -----------------------------------------------------------------------

_ISTIOCTL_KINDS: Final = {
    "Namespace",
    "Service",
    "ServiceAccount",
    "Deployment",
    "AuthorizationPolicy",
    "PeerAuthentication",
    "RequestAuthentication",
    "DestinationRule",
    "Gateway",
    "VirtualService",
    # Egress by name: a pool's provider host and its REGISTRY_ONLY outbound.
    "ServiceEntry",
    "Sidecar",
}


@dataclass(frozen=True)
class IstioctlResult:
    exit_code: int
    output: str

    @property
    def findings(self) -> list[str]:
        return [
            line
            for line in self.output.splitlines()
            if line.startswith(("Error", "Warning", "Warn"))
        ]


def _standin(w: Workload) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [{"name": "app", "image": "standin"}]
    annotations = {}
    if w.injected and not w.edge:
        containers.append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2"})
        annotations["sidecar.istio.io/status"] = '{"containers":["istio-proxy"]}'
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"standin-{w.key}",
            "namespace": w.namespace,
            "labels": w.label_map,
            "annotations": annotations,
        },
        "spec": {"serviceAccountName": w.service_account, "containers": containers},
    }


def istioctl_inputs(cfg: PlatformConfig, manifests: Path, out: Path) -> Path:
    """The plan's Istio objects and what they refer to, plus a stand-in Pod per chart workload
    (with the sidecar the injector would add) and the gateway's certificate Secret, which the
    operator's certificate manager issues (a stand-in of its type)."""
    docs: list[dict[str, Any]] = []
    rendered: list[dict[str, str]] = []
    for doc in _manifests(manifests):
        if doc.get("kind") in _ISTIOCTL_KINDS:
            docs.append(doc)
            if doc["kind"] == "Deployment":
                rendered.append(doc["spec"]["template"]["metadata"]["labels"])
    for w in workloads(cfg).values():
        ours = any(w.label_map.items() <= labels.items() for labels in rendered)
        if w.labels and not w.host_network and not ours and w.namespace != "kube-system":
            docs.append(_standin(w))
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": cfg.mesh.tls_secret, "namespace": ROOT_NAMESPACE},
            "data": {"tls.crt": "", "tls.key": ""},
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    target = out / "mesh.yaml"
    target.write_text(yaml.safe_dump_all(docs, sort_keys=True))
    return target


def run_istioctl(binary: Path, inputs: Path) -> IstioctlResult:
    """istioctl analyze over one file, run beside it so its output names the file alone (the
    verdict in the plan is the same from run to run, whatever the scratch directory)."""
    proc = subprocess.run(  # noqa: S603 - a pinned analyzer, argv list
        [str(binary), "analyze", "--use-kube=false", "--all-namespaces", inputs.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=inputs.parent,
    )
    return IstioctlResult(proc.returncode, proc.stdout + proc.stderr)


# ---- Istio authorization, per flow ----------------------------------------------------------


def _manifests(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                yield doc


def mesh_config(manifests: Path) -> MeshConfig:
    """The rendered Istio security objects of a plan."""
    found: dict[str, list[Mapping[str, Any]]] = {}
    for doc in _manifests(manifests):
        if "istio.io/" in str(doc.get("apiVersion", "")):
            found.setdefault(str(doc.get("kind")), []).append(doc)
    return MeshConfig(
        ROOT_NAMESPACE,
        found.get("AuthorizationPolicy", []),
        found.get("RequestAuthentication", []),
        found.get("PeerAuthentication", []),
    )


def _address(n: Network) -> str:
    """An address of the network outside its exceptions."""
    block = ipaddress.ip_network(n.cidr)
    for host in (block.network_address + 1, block.network_address + 2**24 + 1):
        if not any(host in ipaddress.ip_network(e) for e in n.excepted):
            return str(host)
    raise ValueError(f"no address in {n.cidr} outside {n.excepted}")


def _concrete(path: str) -> str:
    return path.replace("*", "item") if path.endswith("*") else path


def flow_requests(flow: Flow, cfg: PlatformConfig) -> Iterator[Request]:
    """The requests a flow makes, as the destination's proxy sees them: per mesh port, method
    and path; with the source's identity (or none over plaintext) and the caller's JWT."""
    dst, src = flow.destination, flow.source
    if not isinstance(dst, Workload):
        return
    principal = None if flow.plaintext or not isinstance(src, Workload) else src.principal
    if principal is None and isinstance(src, Workload) and not flow.plaintext:
        principal = f"cluster.local/ns/{src.namespace}/sa/default"  # any pod of the namespace
    source_ip = _address(src) if isinstance(src, Network) else "10.0.0.10"
    token = None
    if flow.caller_jwt and cfg.mesh.jwt is not None:
        token = (cfg.mesh.jwt.issuer, "caller-1")
    # A flow with paths but no methods takes any: a read and a write stand for them.
    calls = [
        (method, path)
        for http in flow.http or (None,)
        for method in (http.methods if http else ()) or (("GET", "POST") if http else (None,))
        for path in (http.paths if http else ()) or (None,)
    ]
    for port in flow.mesh_ports:
        for method, path in calls:
            yield Request(
                dst.namespace,
                dst.label_map,
                port,
                source_ip,
                principal=principal,
                method=method,
                path=_concrete(path) if path else ("/" if method else None),
                token=token,
                token_header=CALLER_JWT_HEADER,
                gateway=dst.edge,
            )


@dataclass(frozen=True)
class FlowDecision:
    flow: str
    request: Request
    decision: Decision

    def row(self) -> dict[str, Any]:
        r = self.request
        return {
            "flow": self.flow,
            "port": r.port,
            "method": r.method,
            "path": r.path,
            "decision": self.decision.value,
        }


def flow_decisions(cfg: PlatformConfig, mesh: MeshConfig) -> list[FlowDecision]:
    """The mesh's decision for every request of every flow it sees."""
    return [
        FlowDecision(f.name, r, decide(r, mesh))
        for f in flows(cfg)
        if f.mesh_ports
        for r in flow_requests(f, cfg)
    ]


# ---- the report -----------------------------------------------------------------------------


def _missing(tool: str, reason: str) -> dict[str, Any]:
    return {"status": "not run", "reason": f"{tool} is not available: {reason}"}


def _netpol(cfg: PlatformConfig, plan_dir: Path, tool: Path | str) -> dict[str, Any]:
    if isinstance(tool, str):
        return _missing("netpol-analyzer", tool)
    with tempfile.TemporaryDirectory(prefix="agentops-netpol-") as work:
        result = netpol_analysis(cfg, plan_dir / "manifests", Path(work), tool)
    return {
        "status": "ran",
        "tool": str(tool),
        "workloads": len(result.entities),
        "allowedConnections": len(result.connections),
        "flowsAllowed": result.allowed_flows,
        "flowsRefused": result.refused_flows,
        "pairsDenied": result.denied_pairs,
        "allowedOutsideTable": result.unexpected,
    }


def _authz(cfg: PlatformConfig, plan_dir: Path) -> dict[str, Any]:
    if not cfg.mesh.enabled:
        return {"status": "not run", "reason": "the stack runs no mesh"}
    decided = flow_decisions(cfg, mesh_config(plan_dir / "manifests"))
    refused = [d.row() for d in decided if d.decision is not Decision.ALLOW]
    return {
        "status": "ran",
        "flows": len({d.flow for d in decided}),
        "requests": len(decided),
        "allowed": len(decided) - len(refused),
        "refused": refused,
        "decisions": [d.row() for d in decided],
    }


def _istioctl(cfg: PlatformConfig, plan_dir: Path, tool: Path | str) -> dict[str, Any]:
    if not cfg.mesh.enabled:
        return {"status": "not run", "reason": "the stack runs no mesh"}
    if isinstance(tool, str):
        return _missing("istioctl", tool)
    with tempfile.TemporaryDirectory(prefix="agentops-istioctl-") as work:
        result = run_istioctl(tool, istioctl_inputs(cfg, plan_dir / "manifests", Path(work)))
    return {
        "status": "ran",
        "tool": str(tool),
        "exitCode": result.exit_code,
        "findings": result.findings,
        "output": result.output,
    }


def report(cfg: PlatformConfig, plan_dir: Path, tools: Mapping[str, Path | str]) -> dict[str, Any]:
    """Every analyzer's verdict over the plan in `plan_dir`; `tools`: binary or why missing."""
    sections = {
        "netpol": _netpol(cfg, plan_dir, tools["netpol"]),
        "authz": _authz(cfg, plan_dir),
        "istioctl": _istioctl(cfg, plan_dir, tools["istioctl"]),
    }
    holds = (
        not sections["netpol"].get("flowsRefused")
        and not sections["netpol"].get("allowedOutsideTable")
        and not sections["authz"].get("refused")
        and not sections["istioctl"].get("findings")
        and sections["istioctl"].get("exitCode", 0) == 0
    )
    complete = all(s["status"] == "ran" or "no mesh" in s["reason"] for s in sections.values())
    return {"flows": len(flows(cfg)), "holds": holds, "complete": complete, **sections}


def write_report(cfg: PlatformConfig, plan_dir: Path, *, build: bool = False) -> dict[str, Any]:
    found = report(cfg, plan_dir, {tool: locate(tool, build=build) for tool in TOOLS})
    (plan_dir / VERDICT_FILE).write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    return found


_Line = Callable[[Mapping[str, Any], int], str]
_SUMMARIES: Final[dict[str, tuple[str, _Line]]] = {
    "netpol": (
        "netpol-analyzer",
        lambda n, flows: (
            f"{n['flowsAllowed']}/{flows} flows allowed, {len(n['flowsRefused'])} refused, "
            f"{n['pairsDenied']} pairs denied, "
            f"{len(n['allowedOutsideTable'])} allowed outside the table"
        ),
    ),
    "authz": (
        "mesh authorization",
        lambda a, _: (
            f"{a['allowed']}/{a['requests']} requests of {a['flows']} flows allowed, "
            f"{len(a['refused'])} refused"
        ),
    ),
    "istioctl": (
        "istioctl analyze",
        lambda i, _: f"exit {i['exitCode']}, {len(i['findings'])} findings",
    ),
}


def summary(found: Mapping[str, Any]) -> list[str]:
    """One line per analyzer, for the plan's console output; a missing tool in capitals."""
    lines = []
    for key, (label, line) in _SUMMARIES.items():
        section = found[key]
        if section["status"] == "ran":
            lines.append(f"{label}: {line(section, found['flows'])}")
        else:
            shout = "not run" if "no mesh" in section["reason"] else "NOT RUN"
            lines.append(f"{label} {shout}: {section['reason']}")
    return lines
