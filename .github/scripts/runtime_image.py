#!/usr/bin/env python3
"""Where image.yml pushes the runtime image, and how its digest lands in a stack's config.

    runtime_image.py refs --urls FILE --tag TAG
        FILE is `pulumi stack output ecrRepositoryUrls --json` (repository name → URL). Prints
        one `URL:TAG` per runtime repository, the tags the one runtime image is pushed under.

    runtime_image.py pin --stack STACK --tag TAG --digest sha256:... [--config FILE] [--dry-run]
        Sets `image.tag` and `image.digest` of every workload of `agentops:agents` (manager,
        costEngine, pools[N]) whose image lives in a runtime repository, with
        `pulumi config set --path --stack STACK ...`, so Pulumi.<STACK>.yaml pins the pushed
        bytes. FILE is `pulumi config --json --stack STACK` (read from the CLI when omitted).

The one runtime image serves all three repositories (the Deployments pick the service with
`agentops serve manager|cost-engine|worker`), so one push gives every workload the same digest.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# The ECR repositories the runtime image is pushed to: cluster.ecrRepositories' defaults.
RUNTIME_REPOSITORIES = ("agent-manager", "cost-engine", "agent-worker")
AGENTS_KEY = "agentops:agents"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Docker's tag grammar; ECR's is the same.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ECR_URL = re.compile(
    r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*$"
)


class PinError(Exception):
    """A value that must not reach a registry or a stack file."""


def image_refs(urls: dict[str, Any], tag: str) -> list[str]:
    """`URL:TAG` for each runtime repository of the stack's `ecrRepositoryUrls` output."""
    if not _TAG.match(tag):
        raise PinError(f"not a valid image tag: {tag!r}")
    refs = []
    for name in RUNTIME_REPOSITORIES:
        url = urls.get(name)
        if not isinstance(url, str):
            raise PinError(f"ecrRepositoryUrls has no repository {name!r}: {sorted(urls)}")
        if not _ECR_URL.match(url):
            raise PinError(f"ecrRepositoryUrls[{name!r}] is not an ECR repository URL: {url!r}")
        refs.append(f"{url}:{tag}")
    return refs


def agents_value(config: dict[str, Any]) -> dict[str, Any]:
    """`agentops:agents` out of `pulumi config --json` (objectValue, or value as JSON)."""
    entry = config.get(AGENTS_KEY)
    if not isinstance(entry, dict):
        raise PinError(f"the stack has no {AGENTS_KEY} config")
    value = entry.get("objectValue")
    if value is None:
        raw = entry.get("value")
        value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, dict):
        raise PinError(f"{AGENTS_KEY} is not an object")
    return value


def workload_paths(agents: dict[str, Any]) -> list[str]:
    """Config paths (under agentops:agents) of the workloads that run a runtime image."""
    candidates: list[tuple[str, Any]] = [
        ("manager", agents.get("manager")),
        ("costEngine", agents.get("costEngine")),
    ]
    candidates += [(f"pools[{i}]", pool) for i, pool in enumerate(agents.get("pools") or [])]
    paths = []
    for path, workload in candidates:
        image = workload.get("image") if isinstance(workload, dict) else None
        if isinstance(image, dict) and image.get("repository") in RUNTIME_REPOSITORIES:
            paths.append(path)
    return paths


def pin_commands(stack: str, agents: dict[str, Any], tag: str, digest: str) -> list[list[str]]:
    if not _DIGEST.match(digest):
        raise PinError(f"not a sha256 image digest: {digest!r}")
    if not _TAG.match(tag):
        raise PinError(f"not a valid image tag: {tag!r}")
    paths = workload_paths(agents)
    if not paths:
        raise PinError(f"no workload of {stack} runs an image of {RUNTIME_REPOSITORIES}")
    commands = []
    for path in paths:
        for field, value in (("tag", tag), ("digest", digest)):
            key = f"{AGENTS_KEY}.{path}.image.{field}"
            commands.append(["pulumi", "config", "set", "--path", "--stack", stack, key, value])
    return commands


def _pulumi_config(stack: str) -> dict[str, Any]:
    proc = subprocess.run(  # noqa: S603 - fixed argv, stack from a fixed choice
        ["pulumi", "config", "--json", "--stack", stack],  # noqa: S607 - the CLI on PATH
        capture_output=True,
        text=True,
        check=True,
    )
    body = json.loads(proc.stdout)
    if not isinstance(body, dict):
        raise PinError("`pulumi config --json` did not print an object")
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="runtime image refs and config pins")
    sub = parser.add_subparsers(dest="command", required=True)
    refs = sub.add_parser("refs", help="URL:TAG per runtime repository")
    refs.add_argument("--urls", type=Path, required=True, help="ecrRepositoryUrls as JSON")
    refs.add_argument("--tag", required=True)
    pin = sub.add_parser("pin", help="pin tag and digest in Pulumi.<stack>.yaml")
    pin.add_argument("--stack", required=True, choices=("staging", "prod"))
    pin.add_argument("--tag", required=True)
    pin.add_argument("--digest", required=True)
    pin.add_argument("--config", type=Path, help="`pulumi config --json` output")
    pin.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)

    try:
        if args.command == "refs":
            urls = json.loads(args.urls.read_text(encoding="utf-8"))
            if not isinstance(urls, dict):
                raise PinError("ecrRepositoryUrls is not an object")
            print("\n".join(image_refs(urls, args.tag)))
            return 0
        config = (
            json.loads(args.config.read_text(encoding="utf-8"))
            if args.config
            else _pulumi_config(args.stack)
        )
        commands = pin_commands(args.stack, agents_value(config), args.tag, args.digest)
    except PinError as err:
        print(f"runtime_image: {err}", file=sys.stderr)
        return 2
    for command in commands:
        print(" ".join(command), file=sys.stderr)
        if not args.dry_run:
            subprocess.run(command, check=True)  # noqa: S603 - fixed argv, validated values
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
