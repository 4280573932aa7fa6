"""A mock monitor that keeps everything the program asked the engine for.

Pulumi's `MockMonitor` hands mocks only a resource's type, name and inputs. The plan also
needs each registration's parent, provider, dependencies and options, which the request
carries, so this subclass records the requests as they pass through.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor

from infra.plan.document import REDACTED, UNKNOWN_VALUE, PlanResource

__all__ = ["RecordingMonitor", "clean_value"]

_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def clean_value(value: Any) -> Any:
    """Wire value → plain JSON: secrets redacted, unknowns named, integral floats as ints."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return REDACTED
        if sig == _RESOURCE_SIG:
            return {"resource": value.get("urn")}
        if sig == _OUTPUT_SIG:
            if value.get("secret"):
                return REDACTED
            return clean_value(value["value"]) if "value" in value else UNKNOWN_VALUE
        return {k: clean_value(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [clean_value(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN:
        return UNKNOWN_VALUE
    return value


def _is_stack(urn: str) -> bool:
    return not urn or urn.split("::")[2] == "pulumi:pulumi:Stack"


def _provider_urn(reference: str) -> str | None:
    # Provider references are "<urn>::<id>"; the id is an engine detail.
    return reference.rsplit("::", 1)[0] if reference else None


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: Any) -> None:
        super().__init__(mocks)
        self.recorded: dict[str, PlanResource] = {}
        self.stack_outputs: dict[str, Any] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine leaves the root stack out of its children's type chain; so do we.
        if _is_stack(parent):
            parent = ""
        return super().make_urn(parent, type_, name)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        urn = self.make_urn(request.parent, request.type, request.name)
        options: dict[str, Any] = {}
        if request.deleteBeforeReplace:
            options["deleteBeforeReplace"] = True
        if request.protect:
            options["protect"] = True
        for key in ("ignoreChanges", "replaceOnChanges", "additionalSecretOutputs"):
            values = sorted(getattr(request, key))
            if values:
                options[key] = values
        self.recorded[urn] = PlanResource(
            urn=urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=None if _is_stack(request.parent) else request.parent,
            provider=_provider_urn(request.provider),
            dependencies=sorted(set(request.dependencies)),
            inputs=clean_value(json_format.MessageToDict(request.object)),
            options=options,
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        if _is_stack(request.urn):
            self.stack_outputs = clean_value(json_format.MessageToDict(request.outputs))
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]
