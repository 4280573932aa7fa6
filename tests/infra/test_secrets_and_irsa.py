"""Required secrets and the IRSA helper, exercised under Pulumi's mock engine."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from infra.layers.irsa import trust_policy
from tests.stacks import REPO


def test_trust_policy_names_one_service_account() -> None:
    policy = json.loads(
        trust_policy(
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC",
            "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC",
            "agents",
            "agent-manager",
        )
    )
    condition = policy["Statement"][0]["Condition"]["StringEquals"]
    assert condition == {
        "oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:agents:agent-manager",
        "oidc.eks.eu-west-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com",
    }


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def test_missing_required_secret_is_a_clear_error() -> None:
    proc = _run(
        """
        import pulumi
        from contracts.config import ConfigError
        from infra.stack_config import require_secret
        from infra.plan.mock_cloud import MockCloud
        pulumi.runtime.set_mocks(MockCloud("eu-west-1", "prod"), project="agentops", stack="prod")
        pulumi.runtime.set_all_config({}, [])
        try:
            require_secret("pagerdutyRoutingKey", "PagerDuty critical receiver")
        except ConfigError as err:
            print(err)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "agentops:pagerdutyRoutingKey is not set (PagerDuty critical receiver)" in proc.stdout
    assert (
        "pulumi config set --secret agentops:pagerdutyRoutingKey <value> --stack prod"
        in proc.stdout
    )


def test_set_secret_is_returned_as_secret_output() -> None:
    proc = _run(
        """
        import pulumi
        from pulumi.runtime.sync_await import _sync_await
        from infra.stack_config import require_secret
        from infra.plan.mock_cloud import MockCloud
        pulumi.runtime.set_mocks(MockCloud("eu-west-1", "prod"), project="agentops", stack="prod")
        pulumi.runtime.set_all_config(
            {"agentops:smtpPassword": "hunter2"}, ["agentops:smtpPassword"]
        )
        out = require_secret("smtpPassword", "e-mail")
        print(_sync_await(out.is_secret()), _sync_await(out.future()))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "hunter2"]


def test_required_secrets_follow_configured_receivers() -> None:
    from contracts.config import load_from_mapping
    from tests.stacks import stack_values

    keys = {s.key for s in load_from_mapping(stack_values("prod")).required_secrets()}
    assert keys == {"slackWebhookUrl", "smtpPassword", "pagerdutyRoutingKey", "vaultToken"}
    assert {s.key for s in load_from_mapping(stack_values("staging")).required_secrets()} == {
        "slackWebhookUrl",
        "vaultToken",
    }
    # Even a laptop's cluster tells someone about its alerts (Slack).
    assert {s.key for s in load_from_mapping(stack_values("local")).required_secrets()} == {
        "slackWebhookUrl"
    }
