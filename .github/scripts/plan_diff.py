#!/usr/bin/env python3
"""Offline plans of every stack on a pull request's base and head, their diffs, one comment.

    plan_diff.py --head DIR --base DIR --out DIR [--stacks staging prod local]
                 [--agentops PATH] [--base-label TEXT] [--head-label TEXT]

Each tree plans with ITS OWN `scripts/dev plan STACK --out ...` (the base with the base's code,
the head with the head's), then the head's `agentops diff BASE HEAD` runs per stack. Writes

    OUT/comment.md   the pull-request comment, hidden marker first, at most COMMENT_LIMIT chars
    OUT/full.md      the same without truncation (job summary, artifact)
    OUT/result.json  per stack: how head and base planned and what the diff said
    OUT/plans-{head,base}/<stack>/...   the plans themselves

and, under GitHub Actions, `comment=true` and `failed=true|false` in $GITHUB_OUTPUT. It exits 0
once the comment is written, whatever the plans said: the workflow posts the comment first and
fails the check afterwards (a refused Kubernetes upgrade, a policy violation or a config error
on the head). Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

MARKER = "<!-- agentops-plan-diff -->"
# GitHub refuses comment bodies over 65,536 characters; leave room for the footer.
COMMENT_LIMIT = 60_000
STACKS = ("staging", "prod", "local")

EXIT_CONFIG = 2
EXIT_REFUSED_UPGRADE = 3
EXIT_POLICY = 4
_STDERR_LIMIT = 6_000
_COUNTS = re.compile(r"^\*\*(\d+) to add, (\d+) to change, (\d+) to remove\*\*$", re.M)


@dataclass
class PlanRun:
    """One `scripts/dev plan STACK` in one tree."""

    status: str  # ok | policy | config
    returncode: int
    resources: int | None
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def has_plan(self) -> bool:
        return self.resources is not None


@dataclass
class DiffRun:
    status: str  # changes | no-changes | refused | error | skipped
    returncode: int | None
    markdown: str
    stderr: str


@dataclass
class StackResult:
    stack: str
    head: PlanRun
    base: PlanRun
    diff: DiffRun

    @property
    def failure(self) -> str | None:
        """Why this stack fails the check; None when it does not."""
        if self.head.status == "config":
            return "the head's configuration is invalid"
        if self.head.status == "policy":
            return "the head violates a mandatory policy"
        if self.diff.status == "refused":
            return "the Kubernetes version change is refused"
        if self.diff.status == "error":
            return "`agentops diff` failed"
        return None


def classify_plan(returncode: int, plan_dir: Path, stderr: str) -> PlanRun:
    """A plan's outcome from its exit status and what it wrote.

    The runner writes plan.json before it checks policies, so a failed plan *with* a plan is a
    policy violation (status 4) and one without is a config error (status 2) — whichever of the
    two codes `agentops plan` reports for a failed stack.
    """
    plan_json = plan_dir / "plan.json"
    resources = None
    if plan_json.is_file():
        try:
            resources = len(json.loads(plan_json.read_text(encoding="utf-8"))["resources"])
        except (ValueError, KeyError, TypeError):
            resources = None
    if returncode == 0 and resources is not None:
        status = "ok"
    elif returncode == EXIT_POLICY or (returncode != 0 and resources is not None):
        status = "policy"
    else:
        status = "config"
    return PlanRun(status=status, returncode=returncode, resources=resources, stderr=stderr)


def run_plan(tree: Path, stack: str, out: Path) -> PlanRun:
    target = out / stack
    dev = tree / "scripts" / "dev"
    if not dev.is_file():
        return classify_plan(EXIT_CONFIG, target, f"{dev} does not exist")
    proc = subprocess.run(  # noqa: S603 - the tree's own dev script, argv list
        [str(dev), "plan", stack, "--out", str(out), "--quiet"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(proc.stderr)
    return classify_plan(proc.returncode, target, proc.stderr)


def classify_diff(returncode: int, markdown: str, stderr: str) -> DiffRun:
    if returncode == EXIT_REFUSED_UPGRADE:
        status = "refused"
    elif returncode != 0:
        status = "error"
    elif _COUNTS.search(markdown):
        status = "changes"
    else:
        status = "no-changes"
    return DiffRun(status=status, returncode=returncode, markdown=markdown, stderr=stderr)


def run_diff(agentops: Path, base: Path, head: Path, output: Path) -> DiffRun:
    proc = subprocess.run(  # noqa: S603 - the head's own CLI, argv list
        [str(agentops), "diff", str(base), str(head), "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(proc.stderr)
    markdown = output.read_text(encoding="utf-8") if output.is_file() else proc.stdout
    return classify_diff(proc.returncode, markdown, proc.stderr)


def _head_cell(run: PlanRun) -> str:
    if run.status == "ok":
        return f"✅ {run.resources} resources"
    if run.status == "policy":
        return "❌ mandatory policy violated"
    return "❌ invalid configuration"


def _diff_cell(result: StackResult) -> str:
    d = result.diff
    if d.status == "changes":
        match = _COUNTS.search(d.markdown)
        assert match is not None
        add, change, remove = match.groups()
        return f"{add} to add, {change} to change, {remove} to remove"
    if d.status == "no-changes":
        return "no changes"
    if d.status == "refused":
        return "❌ Kubernetes version change refused"
    if d.status == "error":
        return "❌ diff failed"
    if not result.head.has_plan:
        return "— (no head plan)"
    return "— (base does not plan this stack)"


def _pre(title: str, text: str) -> list[str]:
    body = text.strip()
    if len(body) > _STDERR_LIMIT:
        body = body[:_STDERR_LIMIT] + "\n… (cut; the job log has it all)"
    return [
        f"<details open><summary>{html.escape(title)}</summary>",
        "",
        f"<pre>{html.escape(body)}</pre>",
        "",
        "</details>",
        "",
    ]


def _section(result: StackResult) -> list[str]:
    lines = [f"### `{result.stack}`", ""]
    if not result.head.ok:
        lines += _pre(f"{result.stack}: head plan output", result.head.stderr)
    if result.base.status == "config":
        lines += [
            "The base commit does not plan this stack (new stack, or its config was invalid"
            " there); no diff.",
            "",
        ]
    if result.diff.markdown:
        # The diff's own title is a level-3 heading; nest it under the stack's.
        lines += [result.diff.markdown.replace("### Plan diff:", "#### Plan diff:", 1), ""]
    if result.diff.status == "error":
        lines += _pre(f"{result.stack}: agentops diff output", result.diff.stderr)
    return lines


def render(
    results: list[StackResult], base_label: str, head_label: str, run_url: str | None
) -> tuple[str, str]:
    """(comment, full): the comment fits GitHub's limit, `full` is uncut."""
    failures = [(r.stack, r.failure) for r in results if r.failure]
    head = [
        MARKER,
        "## Offline plan diff",
        "",
        f"Base {base_label} → head {head_label}, planned offline under the mock engine"
        " (no cloud credentials). `pulumi preview` against the cloud runs in its own job.",
        "",
        "| stack | head plan | diff against base |",
        "|---|---|---|",
        *(f"| `{r.stack}` | {_head_cell(r.head)} | {_diff_cell(r)} |" for r in results),
        "",
    ]
    if failures:
        head += ["**This check fails:**", ""]
        head += [f"- `{stack}`: {why}" for stack, why in failures]
        head += [""]
    sections = [_section(r) for r in results]
    full = "\n".join(head + [line for s in sections for line in s])
    footer = ["", "---", "<sub>Updated on every push by the `pr-preview` workflow"]
    footer[-1] += f" ([run]({run_url})).</sub>" if run_url else ".</sub>"
    comment_lines = list(head)
    budget = COMMENT_LIMIT - len("\n".join(head + footer)) - 400
    cut = []
    for result, section in zip(results, sections, strict=True):
        text = "\n".join(section)
        if len(text) + 1 <= budget:
            comment_lines += section
            budget -= len(text) + 1
        else:
            cut.append(result.stack)
            comment_lines += [f"### `{result.stack}`", "", "_Too long for a comment._", ""]
    if cut:
        where = f"the [run summary]({run_url})" if run_url else "the run summary"
        comment_lines += [
            f"The diff of {', '.join(f'`{s}`' for s in cut)} is in {where} and its"
            " `plan-diff` artifact.",
        ]
    return "\n".join(comment_lines + footer) + "\n", full + "\n"


def _short(tree: Path) -> str:
    proc = subprocess.run(  # noqa: S603 - fixed argv
        ["git", "-C", str(tree), "rev-parse", "--short=12", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return f"`{proc.stdout.strip()}`" if proc.returncode == 0 else f"`{tree.name}`"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--head", type=Path, required=True, help="work tree of the head")
    parser.add_argument("--base", type=Path, required=True, help="work tree of the base")
    parser.add_argument("--out", type=Path, required=True, help="directory for the results")
    parser.add_argument("--stacks", nargs="+", default=list(STACKS))
    parser.add_argument(
        "--agentops", type=Path, help="CLI that diffs (default: HEAD/.venv/bin/agentops)"
    )
    parser.add_argument("--base-label", help="how the comment names the base commit")
    parser.add_argument("--head-label", help="how the comment names the head commit")
    args = parser.parse_args(argv)

    head_tree, base_tree = args.head.resolve(), args.base.resolve()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for stack in args.stacks:
        print(f"==> {stack}: planning head and base", file=sys.stderr, flush=True)
        head = run_plan(head_tree, stack, out / "plans-head")
        base = run_plan(base_tree, stack, out / "plans-base")
        if head.has_plan and base.has_plan:
            agentops = args.agentops or head_tree / ".venv" / "bin" / "agentops"
            diff = run_diff(
                agentops, out / "plans-base" / stack, out / "plans-head" / stack, out / "d.md"
            )
            (out / "d.md").unlink(missing_ok=True)
        else:
            diff = DiffRun(status="skipped", returncode=None, markdown="", stderr="")
        results.append(StackResult(stack=stack, head=head, base=base, diff=diff))

    server = os.environ.get("GITHUB_SERVER_URL")
    repo, run_id = os.environ.get("GITHUB_REPOSITORY"), os.environ.get("GITHUB_RUN_ID")
    run_url = f"{server}/{repo}/actions/runs/{run_id}" if server and repo and run_id else None
    comment, full = render(
        results,
        args.base_label or _short(base_tree),
        args.head_label or _short(head_tree),
        run_url,
    )
    (out / "comment.md").write_text(comment, encoding="utf-8")
    (out / "full.md").write_text(full, encoding="utf-8")
    failed = any(r.failure for r in results)
    report = {
        "failed": failed,
        "stacks": {r.stack: {**asdict(r), "failure": r.failure} for r in results},
    }
    (out / "result.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as fh:
            fh.write(f"comment=true\nfailed={'true' if failed else 'false'}\n")
    for r in results:
        print(f"{r.stack}: head {r.head.status}, diff {r.diff.status}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
