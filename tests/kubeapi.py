"""A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager.

Everything listens on 127.0.0.1 on free ports and is stopped by PID. Each run generates its own
certificate authority, serving certificate, admin client certificate and service-account signing
key (with `openssl`), so nothing is shared between runs or with a real cluster.

The binaries come from `scripts/ensure-kube` (built once per Kubernetes version, then cached);
`scripts/dev test` exports their directory as `AGENTOPS_KUBE_BIN`, and without it the first use
runs the script itself.

    with control_plane(tmp_path) as kube:
        core = kubernetes.client.CoreV1Api(kube.api_client())

Any test folder gets the session-wide instance through the `kube` fixture (tests/conftest.py).
There is no kubelet, scheduler or CNI: pods are admitted and stored, never run.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest
import yaml

from tests.managed import ManagedProcess
from tests.servers import free_port

__all__ = [
    "CONTROLLERS",
    "VAULT_AUDIENCE",
    "ControlPlane",
    "ControlPlaneError",
    "control_plane",
    "kube",
    "kube_bin_dir",
]

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
# The controllers a cluster needs to turn applied objects into admitted pods: service accounts
# and their tokens, Deployments -> ReplicaSets -> Pods, StatefulSets -> claims + Pods (the local
# stack's database), quota usage (the ResourceQuota admission
# refuses every pod of a namespace whose quota has no computed status yet), the root CA
# ConfigMap; and deletion (namespaces, owned objects) for tests that clean up after themselves.
# No scheduler, no kubelet, no node lifecycle: pods stay Pending.
CONTROLLERS = (
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "resourcequota-controller",
    "root-ca-certificate-publisher-controller",
    "namespace-controller",
    "garbage-collector-controller",
)
VAULT_AUDIENCE = "vault"
START_TIMEOUT = 180.0


class ControlPlaneError(RuntimeError):
    """A component did not start; the message carries the end of its log."""


def kube_bin_dir() -> Path:
    """The directory with etcd, kube-apiserver and kube-controller-manager.

    `AGENTOPS_KUBE_BIN` when set (scripts/dev test sets it), otherwise whatever
    `scripts/ensure-kube` prints (a cached run takes about a second; the first builds).
    """
    configured = os.environ.get("AGENTOPS_KUBE_BIN")
    if configured:
        directory = Path(configured)
    else:
        proc = subprocess.run(
            [str(REPO / "scripts" / "ensure-kube")],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
        if proc.returncode != 0:
            raise ControlPlaneError(f"scripts/ensure-kube failed:\n{proc.stderr[-4000:]}")
        directory = Path(proc.stdout.strip().splitlines()[-1])
    for binary in ("etcd", "kube-apiserver", "kube-controller-manager"):
        if not os.access(directory / binary, os.X_OK):
            raise ControlPlaneError(f"{directory / binary} is missing: run scripts/ensure-kube")
    return directory


# ---- certificates ------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def _ec_key(directory: Path, name: str) -> None:
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        f"{name}.key",
        cwd=directory,
    )


def _signed_cert(directory: Path, name: str, subject: str, extensions: list[str]) -> None:
    """`<name>.key` + `<name>.crt` signed by the run's CA, valid for a day."""
    _ec_key(directory, name)
    _openssl(
        "req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=directory
    )
    (directory / f"{name}.ext").write_text("\n".join(extensions) + "\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        f"0x{secrets.token_hex(16)}",
        "-days",
        "1",
        "-sha256",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.crt",
        cwd=directory,
    )


def _generate_pki(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _ec_key(directory, "ca")
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=agentops-test-ca",
        "-days",
        "1",
        "-sha256",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        "ca.crt",
        cwd=directory,
    )
    sans = ",".join(
        [
            f"IP:{HOST}",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    _signed_cert(
        directory,
        "apiserver",
        "/CN=kube-apiserver",
        [
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth",
            f"subjectAltName={sans}",
        ],
    )
    client = ["keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=clientAuth"]
    # system:masters is bound to cluster-admin by the API server's bootstrap RBAC policy.
    _signed_cert(directory, "admin", "/O=system:masters/CN=agentops-test-admin", client)
    # The identity the bootstrap policy grants the controller manager (it then uses one
    # service account per controller, as a real cluster does).
    _signed_cert(directory, "controller-manager", "/CN=system:kube-controller-manager", client)
    # Service-account tokens: the API server signs them (TokenRequest) and verifies them
    # (authentication, TokenReview) with this key pair.
    _openssl(
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "service-account.key",
        cwd=directory,
    )
    _openssl(
        "pkey",
        "-in",
        "service-account.key",
        "-pubout",
        "-out",
        "service-account.pub",
        cwd=directory,
    )


def _write_kubeconfig(path: Path, url: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "agentops-test", "cluster": {"server": url, "certificate-authority": str(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [
            {"name": "agentops-test", "context": {"cluster": "agentops-test", "user": user}}
        ],
        "current-context": "agentops-test",
    }
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    path.chmod(0o600)


# ---- processes ---------------------------------------------------------------------------------


def _component(name: str, argv: list[str], directory: Path) -> ManagedProcess:
    """Start one component in `directory`, its output in `<name>.log`; readiness is awaited by
    the caller (`wait_until`), after the process is registered for stopping."""
    return ManagedProcess(
        name,
        argv,
        directory / f"{name}.log",
        cwd=directory,
        not_yet=(OSError, kubernetes.client.ApiException),
        start_timeout=START_TIMEOUT,
        poll_interval=0.2,
        error=ControlPlaneError,
    ).start()


def _http_get(url: str, context: ssl.SSLContext | None = None, timeout: float = 2) -> bytes:
    """GET one of our own 127.0.0.1 URLs (http or https); the body on 200."""
    assert url.startswith((f"http://{HOST}:", f"https://{HOST}:")), url
    with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310
        return bytes(response.read())


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    _http_get(url, context)
    return True


# ---- the control plane -------------------------------------------------------------------------


@dataclass
class ControlPlane:
    """A running control plane: where it listens, how to reach it as admin."""

    directory: Path
    bin_dir: Path
    api_port: int
    etcd_port: int
    processes: list[ManagedProcess] = field(default_factory=list)
    version: str = ""

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.api_port}"

    @property
    def ca_path(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    @property
    def admin_cert(self) -> Path:
        return self.directory / "pki" / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.directory / "pki" / "admin.key"

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (client certificate in group system:masters)."""
        return self.directory / "admin.kubeconfig"

    @property
    def service_account_issuer(self) -> str:
        """The `iss` of service-account tokens; its OIDC discovery is served under this URL."""
        return self.url

    @property
    def api_audiences(self) -> tuple[str, ...]:
        """Audiences the API server accepts; the first is a TokenRequest's default."""
        return (self.service_account_issuer, VAULT_AUDIENCE)

    def api_client(self) -> kubernetes.client.ApiClient:
        """A new admin client from the kubeconfig (close it, or use it as a context manager)."""
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the serving certificate and presents the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.load_cert_chain(str(self.admin_cert), str(self.admin_key))
        return context

    def get(self, path: str) -> Any:
        """GET a path of the API as admin, JSON-decoded (or text when it is not JSON)."""
        body = _http_get(f"{self.url}{path}", self.ssl_context(), timeout=10).decode()
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            return body

    def stop(self) -> None:
        """Stops every component by PID, newest first."""
        while self.processes:
            self.processes.pop().stop()

    # -- startup ---------------------------------------------------------------------------------

    def _start_etcd(self) -> None:
        peer_port = free_port()
        client_url = f"http://{HOST}:{self.etcd_port}"
        peer_url = f"http://{HOST}:{peer_port}"
        data = self.directory / "etcd-data"
        process = _component(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=test",
                f"--data-dir={data}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=test={peer_url}",
                "--initial-cluster-state=new",
                "--log-level=warn",
            ],
            self.directory,
        )
        self.processes.append(process)

        def healthy() -> bool:
            return bool(json.loads(_http_get(f"{client_url}/health")).get("health") == "true")

        process.wait_until("/health", healthy)

    def _start_apiserver(self) -> None:
        pki = self.directory / "pki"
        process = _component(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://{HOST}:{self.etcd_port}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={self.ca_path}",
                "--authorization-mode=Node,RBAC",
                "--anonymous-auth=false",
                # The default admission chain (NamespaceLifecycle, LimitRanger, ServiceAccount,
                # PodSecurity, ResourceQuota, ...) plus NodeRestriction, as on a real cluster.
                "--enable-admission-plugins=NodeRestriction",
                f"--service-account-issuer={self.service_account_issuer}",
                f"--service-account-key-file={pki / 'service-account.pub'}",
                f"--service-account-signing-key-file={pki / 'service-account.key'}",
                f"--api-audiences={','.join(self.api_audiences)}",
                "--service-cluster-ip-range=10.96.0.0/12",
                "--profiling=false",
                "--v=1",
            ],
            self.directory,
        )
        self.processes.append(process)
        context = self.ssl_context()
        process.wait_until("/readyz", lambda: _http_ok(f"{self.url}/readyz", context))
        self.version = str(self.get("/version")["gitVersion"])

    def _start_controller_manager(self) -> None:
        pki = self.directory / "pki"
        kubeconfig = self.directory / "controller-manager.kubeconfig"
        _write_kubeconfig(
            kubeconfig,
            self.url,
            self.ca_path,
            pki / "controller-manager.crt",
            pki / "controller-manager.key",
            "system:kube-controller-manager",
        )
        port = free_port()
        process = _component(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={HOST}",
                f"--secure-port={port}",
                f"--cert-dir={self.directory / 'controller-manager-certs'}",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={pki / 'service-account.key'}",
                f"--root-ca-file={self.ca_path}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
            self.directory,
        )
        self.processes.append(process)
        # Its own /healthz (unauthenticated by default) is served on a self-signed certificate.
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        process.wait_until("/healthz", lambda: _http_ok(f"https://{HOST}:{port}/healthz", insecure))

        # Working controllers, not only a live process: the service-account controller has
        # created the `default` service account of the `default` namespace.
        def default_service_account() -> bool:
            with self.api_client() as client:
                core = kubernetes.client.CoreV1Api(client)
                core.read_namespaced_service_account("default", "default")
            return True

        process.wait_until("the default service account", default_service_account)


@contextmanager
def control_plane(directory: Path, bin_dir: Path | None = None) -> Iterator[ControlPlane]:
    """Starts etcd, kube-apiserver and kube-controller-manager in `directory`; stops them
    (by PID) on exit, also when the body raises."""
    directory.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(
        directory=directory,
        bin_dir=bin_dir or kube_bin_dir(),
        api_port=free_port(),
        etcd_port=free_port(),
    )
    with ExitStack() as stack:
        stack.callback(plane.stop)
        _generate_pki(directory / "pki")
        _write_kubeconfig(
            plane.kubeconfig,
            plane.url,
            plane.ca_path,
            plane.admin_cert,
            plane.admin_key,
            "agentops-test-admin",
        )
        plane._start_etcd()
        plane._start_apiserver()
        plane._start_controller_manager()
        yield plane


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One control plane for the whole session (objects persist between tests: use your own
    namespaces). Import it into a conftest.py to use it: `from tests.kubeapi import kube`."""
    with control_plane(tmp_path_factory.mktemp("kube")) as plane:
        yield plane
