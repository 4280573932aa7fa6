"""Vault's API as its sidecar sees it: a recording proxy in front of a real OpenBao, and the
mesh's decision on each recorded request under the generated AuthorizationPolicies."""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from contracts.config import PlatformConfig
from infra.plan.istio_authz import Decision, MeshConfig, Request, decide
from infra.platform.flows import VAULT_API, workloads
from infra.platform.mesh_policies import ROOT_NAMESPACE, MeshObject, mesh_security

__all__ = ["generated_mesh", "recording_proxy", "vault_decision"]


@contextmanager
def recording_proxy(
    upstream: str, refuse: Callable[[str, str], bool] | None = None
) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A proxy on 127.0.0.1 in front of OpenBao that records each request's method and path as
    Vault's sidecar sees them (Istio matches `paths` on the URL path, without the query) and,
    given `refuse`, answers 403 as the sidecar would where it refuses."""
    seen: list[tuple[str, str]] = []
    target = urllib.parse.urlsplit(upstream)

    class Forward(http.server.BaseHTTPRequestHandler):
        def forward(self) -> None:
            call = (self.command, urllib.parse.urlsplit(self.path).path)
            seen.append(call)
            if refuse is not None and refuse(*call):
                # What Envoy answers when an AuthorizationPolicy refuses a request.
                denied = b"RBAC: access denied"
                self.send_response(403)
                self.send_header("Content-Length", str(len(denied)))
                self.end_headers()
                self.wfile.write(denied)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_LIST = forward  # noqa: N815 - the handler's names

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _manifest(obj: MeshObject) -> dict[str, object]:
    return {
        "apiVersion": f"{obj.group}/v1",
        "kind": obj.kind,
        "metadata": {"name": obj.name, "namespace": obj.namespace},
        "spec": obj.spec,
    }


def generated_mesh(cfg: PlatformConfig) -> MeshConfig:
    """The stack's mesh security objects as the plan renders them."""
    objects = [_manifest(o) for o in mesh_security(cfg)]
    return MeshConfig(
        ROOT_NAMESPACE,
        [o for o in objects if o["kind"] == "AuthorizationPolicy"],
        [o for o in objects if o["kind"] == "RequestAuthentication"],
        [o for o in objects if o["kind"] == "PeerAuthentication"],
    )


def vault_decision(
    cfg: PlatformConfig, mesh: MeshConfig, identity: str, method: str, path: str
) -> Decision:
    """The Vault servers' sidecar's decision on `method path` from `identity`'s workload."""
    found = workloads(cfg)
    vault = found["vault"]
    request = Request(
        vault.namespace,
        vault.label_map,
        VAULT_API,
        "10.0.0.10",
        principal=found[identity].principal,
        method=method,
        path=path,
    )
    return decide(request, mesh)
