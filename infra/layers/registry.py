"""ECR repositories for the runtime images: scanned on push, immutable tags, KMS-encrypted."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.layers.tagging import Tagging

__all__ = ["Registry", "RegistryArgs"]

_KEEP_IMAGES = 100


@dataclass(frozen=True)
class RegistryArgs:
    repositories: list[str]
    prefix: str
    tagging: Tagging


class Registry(pulumi.ComponentResource):
    repository_urls: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        lifecycle = json.dumps(
            {
                "rules": [
                    {
                        "rulePriority": 1,
                        "description": f"keep the newest {_KEEP_IMAGES} images",
                        "selection": {
                            "tagStatus": "any",
                            "countType": "imageCountMoreThan",
                            "countNumber": _KEEP_IMAGES,
                        },
                        "action": {"type": "expire"},
                    }
                ]
            },
            sort_keys=True,
        )
        self.repository_urls = {}
        for repo in args.repositories:
            full = f"{args.prefix}/{repo}"
            ecr = aws.ecr.Repository(
                f"{name}-{repo}",
                name=full,
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")
                ],
                tags=args.tagging(full),
                opts=child,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{repo}", repository=ecr.name, policy=lifecycle, opts=child
            )
            self.repository_urls[repo] = ecr.repository_url
        self.register_outputs({"repository_urls": self.repository_urls})
