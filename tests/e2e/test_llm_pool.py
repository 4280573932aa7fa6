"""A real agent on the local platform: a pool on the LLM handler, configured like a stack file
says (handler, provider, models, key in Vault), calling a stand-in OpenAI-compatible provider on
127.0.0.1 with the key a real `bao agent` rendered from OpenBao into a file."""

from __future__ import annotations

import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

from contracts.settings.environment import env_name
from contracts.settings.llm import LLMSettings
from contracts.settings.worker import WorkerSettings
from infra.plan.stackfile import load_stack_config
from infra.platform.names import pool_workload
from infra.platform.runtime_secrets import PROVIDER_KEY_FILE
from infra.platform.vault_access import vault_identities
from infra.platform.workloads import runtime_workloads
from tests.e2e.platform import eventually, local_platform
from tests.e2e.test_local_platform import expected_cost, ledger_today
from tests.runtime.worker.standin import provider
from tests.servers import bao_server
from tests.vault_agent import render_once, token_for

POOL = "code-generator"
KEY_PATH = f"pools/{pool_workload(POOL)}/openai"


def _llm_pool(url: str) -> Any:
    def change(config: dict[str, Any]) -> None:
        (pool,) = config["agentops:agents"]["pools"]
        assert pool["name"] == POOL
        pool.update(
            {
                "handler": "llm",
                "model": "gpt-5",
                "provider": {
                    "baseUrl": url,
                    "models": ["gpt-5", "gpt-5-mini"],
                    "key": {"path": KEY_PATH, "field": "apiKey"},
                },
            }
        )

    return change


def test_llm_pool_calls_its_provider_with_the_key_vault_rendered(tmp_path: Path) -> None:
    key = f"sk-test-{secrets.token_hex(16)}"
    with provider(key) as stand_in, bao_server(tmp_path / "bao") as bao:
        # The stack's config as a file; the workload and the policy the program derives from it.
        from tests.e2e.platform import e2e_stack

        cfg = load_stack_config(e2e_stack(tmp_path / "cfg", None, _llm_pool(stand_in.url)), "local")
        (worker,) = [w for w in runtime_workloads(cfg) if w.name == pool_workload(POOL)]
        (key_file,) = [f for f in worker.secret_files if f.name == PROVIDER_KEY_FILE]
        (identity,) = [i for i in vault_identities(cfg) if i.name == worker.identity]
        assert (
            worker.env[env_name(WorkerSettings, "handler")] == "runtime.worker.handlers.llm:build"
        )
        assert worker.env[env_name(LLMSettings, "base_url")] == stand_in.url
        assert worker.env[env_name(LLMSettings, "api_key_file")] == key_file.path

        # Vault holds the key (and a field the file must not carry); the pool's own policy.
        mount = cfg.vault.kv_mount
        assert bao.bao("secrets", "enable", f"-path={mount}", "kv-v2").returncode == 0
        put = bao.bao("kv", "put", f"-mount={mount}", KEY_PATH, f"apiKey={key}", "org=acme")
        assert put.returncode == 0, put.stderr
        policy = tmp_path / "policy.hcl"
        policy.write_text(identity.policy)
        assert bao.bao("policy", "write", identity.name, str(policy)).returncode == 0
        rendered = render_once(
            bao,
            token_for(bao, identity.name),
            key_file.template(mount),
            tmp_path / "vault-secrets" / PROVIDER_KEY_FILE,
        )
        assert rendered.read_text() == key

        # The worker reads the key from that file: the path the pod's env names, here on disk.
        with local_platform(
            tmp_path,
            workers=1,
            stack=_llm_pool(stand_in.url),
            AGENTOPS_LLM_API_KEY_FILE=str(rendered),
        ) as platform:
            ids = [
                platform.submit(agent_type=POOL, payload={"prompt": f"question {i}"}).json()[
                    "task_id"
                ]
                for i in range(3)
            ]
            records = eventually("3 llm tasks finished", lambda: platform.finished(ids))
            assert {r["status"] for r in records} == {"succeeded"}, records
            calls, cost, _ = ledger_today(platform)

    # The stand-in saw the Vault-rendered key on every call, and nothing else got through.
    assert len(stand_in.received) == 3
    assert {r["headers"]["authorization"] for r in stand_in.received} == {f"Bearer {key}"}
    assert {r["body"]["model"] for r in stand_in.received} == {"gpt-5"}
    # The answer and the usage are the provider's own.
    replies = {r["result"]["content"] for r in records}
    assert replies == {f"answer to question {i}" for i in range(3)}
    for record, received in zip(
        sorted(records, key=lambda r: r["result"]["content"]),
        sorted(stand_in.received, key=lambda r: r["body"]["messages"][-1]["content"]),
        strict=True,
    ):
        body = received["body"]
        prompt = sum(len(m["content"].split()) for m in body["messages"]) + 7
        (used,) = record["usage"]
        assert (used["model"], used["input_tokens"], used["output_tokens"]) == ("gpt-5", prompt, 4)
        assert record["result"]["usage_estimated"] is False
    assert calls == 3
    assert cost == expected_cost(tmp_path, records) > Decimal(0)
