"""np-guard's NetworkPolicy connectivity analyzer (k8snetpolicy) over a stack's rendered manifests.

Used by `agentops plan` (the connectivity report, infra/plan/connectivity.py) and by tests/flows.

The plan renders our Deployments, Namespaces and NetworkPolicies; the charts' pods are not in it,
so each chart workload of the flow table gets a stand-in Pod with the labels its chart gives
its pods. The analyzer lists every allowed connection; `compare` matches them with the table.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.platform.flows import Flow, Network, Peer, Workload

__all__ = [
    "Analysis",
    "Connection",
    "analyze",
    "compare",
    "write_inputs",
]

KINDS = ("Namespace", "NetworkPolicy", "Deployment")
NS_LABEL = "kubernetes.io/metadata.name"
ALL_PORTS = frozenset({("*", 0)})
IPv4 = ipaddress.IPv4Network


@dataclass(frozen=True)
class Connection:
    src: str  # "ns/name" of a pod or Deployment, or an address range "a.b.c.d-e.f.g.h"
    dst: str
    ports: frozenset[tuple[str, int]]  # (protocol, port); ("*", 0): every connection


@dataclass
class Inputs:
    directory: Path
    labels: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # name → ns, labels


def _docs(manifests: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(manifests.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                yield doc


def _rendered(w: Workload, inputs: Inputs) -> bool:
    return bool(w.labels) and any(
        ns == w.namespace and w.label_map.items() <= labels.items()
        for ns, labels in inputs.labels.values()
    )


def write_inputs(manifests: Path, directory: Path, table: list[Flow]) -> Inputs:
    """Our rendered objects plus a stand-in Pod per chart workload of the table."""
    directory.mkdir(parents=True, exist_ok=True)
    inputs = Inputs(directory)
    docs: list[dict[str, Any]] = []
    namespaces: set[str] = set()
    for doc in _docs(manifests):
        if doc.get("kind") not in KINDS:
            continue
        meta = doc["metadata"]
        if doc["kind"] == "Namespace":
            # The API server labels every namespace with its name; the plan does not.
            meta.setdefault("labels", {})[NS_LABEL] = meta["name"]
            namespaces.add(meta["name"])
        if doc["kind"] == "Deployment":
            labels = doc["spec"]["template"]["metadata"]["labels"]
            inputs.labels[f"{meta['namespace']}/{meta['name']}"] = (meta["namespace"], labels)
        docs.append(doc)
    charted: dict[str, Workload] = {}
    self_flows = {f.source.key for f in table if f.source == f.destination}
    for flow in table:
        for peer in (flow.source, flow.destination):
            standin = isinstance(peer, Workload) and peer.labels and not peer.host_network
            if standin and isinstance(peer, Workload) and not _rendered(peer, inputs):
                charted[peer.key] = peer
    for w in charted.values():
        if w.namespace not in namespaces:
            namespaces.add(w.namespace)
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": w.namespace, "labels": {NS_LABEL: w.namespace}},
                }
            )
        # Two pods where the workload talks to itself (raft, Sentinel), else one.
        for i in range(2 if w.key in self_flows else 1):
            name = f"standin-{w.key}-{i}"
            inputs.labels[f"{w.namespace}/{name}"] = (w.namespace, w.label_map)
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": w.namespace, "labels": w.label_map},
                    "spec": {"containers": [{"name": "c", "image": "standin"}]},
                }
            )
    (directory / "inputs.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=True))
    return inputs


_PORTS = re.compile(r"(TCP|UDP|SCTP) ([0-9,\-]+)")


def _ports(conn: str) -> frozenset[tuple[str, int]]:
    if conn.strip().lower().startswith("all connections"):
        return ALL_PORTS
    found: set[tuple[str, int]] = set()
    for proto, numbers in _PORTS.findall(conn):
        for part in filter(None, numbers.split(",")):
            low, _, high = part.partition("-")
            found.update((proto, p) for p in range(int(low), int(high or low) + 1))
    return frozenset(found)


def _entity(name: str) -> str:
    return re.sub(r"\[[A-Za-z]+\]$", "", name)


def analyze(binary: Path, inputs: Inputs) -> list[Connection]:
    proc = subprocess.run(  # noqa: S603 - a pinned analyzer, argv list
        [str(binary), "list", "--dirpath", str(inputs.directory), "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    # Every object must be read: the analyzer reports skipped or malformed input on stderr.
    if proc.returncode != 0 or proc.stderr.strip():
        raise RuntimeError(f"{binary.name} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return [
        Connection(_entity(c["src"]), _entity(c["dst"]), _ports(c["conn"]))
        for c in json.loads(proc.stdout)
    ]


def _is_range(entity: str) -> bool:
    return "/" not in entity


def _range(entity: str) -> list[IPv4]:
    low, _, high = entity.partition("-")
    return list(
        ipaddress.summarize_address_range(
            ipaddress.IPv4Address(low), ipaddress.IPv4Address(high or low)
        )
    )


def _network_blocks(n: Network) -> list[IPv4]:
    blocks = [IPv4(n.cidr)]
    for excluded in n.excepted:
        gap = IPv4(excluded)
        blocks = [
            part
            for b in blocks
            for part in ([b] if not b.overlaps(gap) else list(b.address_exclude(gap)))
        ]
    return blocks


def _covers(ranges: Iterable[IPv4], wanted: Iterable[IPv4]) -> bool:
    have = list(ipaddress.collapse_addresses(ranges))
    return all(any(w.subnet_of(h) for h in have) for w in wanted) if have else False


@dataclass
class Analysis:
    connections: list[Connection]
    entities: list[str]
    refused_flows: list[str]  # flows of the table the analyzer does not allow
    unexpected: list[str]  # allowed connections no flow carries
    allowed_flows: int
    denied_pairs: int


def _pods(peer: Peer, inputs: Inputs, nodes: Network) -> list[str] | Network:
    if isinstance(peer, Network):
        return peer
    if peer.host_network:
        return nodes
    return [
        name
        for name, (ns, labels) in inputs.labels.items()
        if ns == peer.namespace and peer.label_map.items() <= labels.items()
    ]


def _has(c: Connection, proto: str, port: int) -> bool:
    return c.ports == ALL_PORTS or (proto, port) in c.ports


def _flow_allowed(
    flow: Flow, inputs: Inputs, nodes: Network, by_pair: dict[tuple[str, str], Connection]
) -> bool:
    src, dst = _pods(flow.source, inputs, nodes), _pods(flow.destination, inputs, nodes)
    proto = flow.protocol.value
    for port in flow.ports:
        if isinstance(src, list) and isinstance(dst, list):
            if not src or not dst:
                return False
            pairs = [(s, d) for s in src for d in dst if s != d]
            if any(p not in by_pair or not _has(by_pair[p], proto, port) for p in pairs):
                return False
        elif isinstance(src, list) and isinstance(dst, Network):
            for s in src:
                ranges = [
                    r
                    for (a, b), c in by_pair.items()
                    if a == s and _is_range(b) and _has(c, proto, port)
                    for r in _range(b)
                ]
                if not _covers(ranges, _network_blocks(dst)):
                    return False
        elif isinstance(src, Network) and isinstance(dst, list):
            for d in dst:
                ranges = [
                    r
                    for (a, b), c in by_pair.items()
                    if b == d and _is_range(a) and _has(c, proto, port)
                    for r in _range(a)
                ]
                if not _covers(ranges, _network_blocks(src)):
                    return False
    return True


def _carried(
    c: Connection, proto: str, port: int, table: list[Flow], inputs: Inputs, nodes: Network
) -> bool:
    for flow in table:
        if flow.protocol.value != proto or port not in flow.ports:
            continue
        src, dst = _pods(flow.source, inputs, nodes), _pods(flow.destination, inputs, nodes)
        src_ok = (
            c.src in src
            if isinstance(src, list)
            else _is_range(c.src) and _covers(_network_blocks(src), _range(c.src))
        )
        dst_ok = (
            c.dst in dst
            if isinstance(dst, list)
            else _is_range(c.dst) and _covers(_network_blocks(dst), _range(c.dst))
        )
        if src_ok and dst_ok:
            return True
    return False


def compare(
    connections: list[Connection],
    inputs: Inputs,
    table: list[Flow],
    owned: set[str],
    nodes: Network,
) -> Analysis:
    by_pair = {(c.src, c.dst): c for c in connections}
    refused = [f.name for f in table if not _flow_allowed(f, inputs, nodes, by_pair)]
    unexpected: list[str] = []
    for c in connections:
        sides = [e.split("/")[0] for e in (c.src, c.dst) if not _is_range(e)]
        if not any(ns in owned for ns in sides):
            continue  # between kube-system and the outside: not the platform's to decide
        if c.ports == ALL_PORTS:
            unexpected.append(f"{c.src} => {c.dst}: all connections")
            continue
        for proto, port in sorted(c.ports):
            if not _carried(c, proto, port, table, inputs, nodes):
                unexpected.append(f"{c.src} => {c.dst}: {proto} {port}")
    entities = sorted(inputs.labels)
    connected = {(c.src, c.dst) for c in connections}
    denied = sum(1 for a in entities for b in entities if a != b and (a, b) not in connected)
    return Analysis(
        connections,
        entities,
        refused,
        unexpected,
        allowed_flows=len(table) - len(refused),
        denied_pairs=denied,
    )
