"""Start, record and stop the local platform's processes. State lives in one directory the
user can delete: config files, token files, logs, data, and `state.json` with every PID."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from ops.devstack import database
from ops.devstack.layout import LOCALHOST, DevPlan, ProcessSpec

__all__ = ["DevState", "free_ports", "read_state", "restart", "start", "stop"]

STATE_FILE = "state.json"
TOKENS = ("api", "agent", "webhook", "cost")

DevState = dict[str, Any]


def free_ports(names: list[str]) -> dict[str, int]:
    sockets, ports = [], {}
    try:
        for name in names:
            s = socket.socket()
            s.bind((LOCALHOST, 0))
            sockets.append(s)
            ports[name] = int(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def read_state(state: Path) -> DevState | None:
    path = state / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _write_secrets(state: Path) -> dict[str, str]:
    directory = state / "secrets"
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    values = {}
    for name in TOKENS:
        path = directory / f"{name}.token"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32) + "\n")
            path.chmod(0o600)
        values[name] = str(path)
    return values


def _wait_ready(spec: ProcessSpec, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{spec.name} exited at start; last log lines:\n{_tail(log)}")
        try:
            if spec.ready_argv is not None:
                probe = subprocess.run(spec.ready_argv, capture_output=True, check=False)  # noqa: S603
                if probe.returncode == 0:
                    return
            elif spec.ready_path is None:
                with socket.create_connection((LOCALHOST, spec.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            elif httpx.get(spec.url + spec.ready_path, timeout=1).status_code == 200:
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{spec.name} not ready after 60 s; last log lines:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def start(
    state: Path, dev: DevPlan, on_started: Callable[[ProcessSpec], None] | None = None
) -> DevState:
    """Start every process in order and wait until each is ready; on a failure, stop what
    started and raise."""
    existing = read_state(state)
    if existing and any(_alive(p["pid"]) for p in existing["processes"]):
        raise RuntimeError(f"a local platform is already running from {state}: `agentops dev down`")
    state.mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "redis", "prometheus-data", "alertmanager-data"):
        (state / sub).mkdir(exist_ok=True)
    tokens = _write_secrets(state)
    for name, content in dev.files.items():
        (state / name).write_text(content)
    record: DevState = {"started_at": time.time(), "tokens": tokens, "processes": []}
    try:
        for spec in dev.processes:
            if spec.name == "postgres" and dev.database is not None:
                database.init(dev.database)
            process, log = _spawn(state, spec)
            record["processes"].append({**asdict(spec), "pid": process.pid, "log": str(log)})
            (state / STATE_FILE).write_text(json.dumps(record, indent=2))
            _wait_ready(spec, process, log)
            if spec.name == "postgres" and dev.database is not None:
                database.create_logins(dev.database)
            if on_started is not None:
                on_started(spec)
    except BaseException:
        stop(state)
        raise
    return record


def _spawn(state: Path, spec: ProcessSpec) -> tuple[subprocess.Popen[bytes], Path]:
    log = state / "logs" / f"{spec.name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - argv built by layout.plan, no shell
            spec.argv,
            env={**os.environ, **spec.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=spec.cwd or state,
            start_new_session=True,  # `dev down` outlives the terminal that ran `up`
            **database.as_user(spec.user),
        )
    return process, log


def restart(state: Path, name: str) -> int:
    """Start one recorded process again (after a crash, or to pick up a change) on its port
    and data, wait until it is ready; its new PID."""
    record = read_state(state)
    if record is None:
        raise RuntimeError(f"no local platform recorded in {state}")
    entry = next((p for p in record["processes"] if p["name"] == name), None)
    if entry is None:
        raise RuntimeError(f"{name} is not a process of the local platform in {state}")
    deadline = time.monotonic() + 5  # a process just killed may not be gone (or reaped) yet
    while _alive(entry["pid"]):
        with contextlib.suppress(ChildProcessError):  # reap it if `up` ran in this process
            os.waitpid(entry["pid"], os.WNOHANG)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} is still running (pid {entry['pid']})")
        time.sleep(0.05)
    spec = ProcessSpec(**{f: entry[f] for f in ProcessSpec.__dataclass_fields__})
    process, log = _spawn(state, spec)
    entry["pid"] = process.pid
    (state / STATE_FILE).write_text(json.dumps(record, indent=2))
    _wait_ready(spec, process, log)
    return process.pid


def stop(state: Path, grace_s: float = 30) -> list[str]:
    """SIGTERM every recorded process (workers drain), newest first; SIGKILL after the grace."""
    record = read_state(state)
    if record is None:
        return []
    stopped = []
    for entry in reversed(record["processes"]):
        pid = entry["pid"]
        if not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):  # reap it if `up` ran in this process
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append(entry["name"])
    (state / STATE_FILE).unlink(missing_ok=True)
    return stopped
