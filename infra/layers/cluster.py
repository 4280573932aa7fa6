"""EKS: encrypted control plane, OIDC for IRSA, pinned add-ons, managed node groups.

Upgrade order is carried by the resource graph (see `contracts.versions`): control plane →
networking add-ons (vpc-cni, kube-proxy) → node groups. CoreDNS and the EBS CSI driver only
become ACTIVE once nodes exist, so they depend on the control plane and are created
alongside the node groups instead of gating them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from contracts import versions
from contracts.config import ClusterConfig, NodeGroupConfig
from contracts.config.cluster import EndpointConfig
from infra.layers.irsa import IrsaRole, IrsaRoleArgs
from infra.layers.shared import rotating_key
from infra.layers.tagging import Tagging
from infra.platform.scheduling import NODE_ROLE_LABEL, autoscaler_tags, node_taints

__all__ = ["NODE_ROLE_LABEL", "Cluster", "ClusterArgs", "kubeconfig", "public_access_cidrs"]

_POLICY = "arn:aws:iam::aws:policy/"
# Root CA thumbprint of the EKS OIDC issuers; IAM ignores it for them but the API requires one.
_EKS_OIDC_THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
# Created before the node groups: nodes cannot become Ready without pod networking.
_BEFORE_NODES = ("vpc-cni", "kube-proxy")
# Add-on configuration values. The VPC CNI enforces NetworkPolicies only with its network policy
# agent on: without it every policy the namespaces layer derives from the flow table is inert
# (the policy pack's eks-vpc-cni-network-policy fails such a plan).
ADDON_CONFIGURATION = {"vpc-cni": {"enableNetworkPolicy": "true"}}


@dataclass(frozen=True)
class ClusterArgs:
    config: ClusterConfig
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    region: str
    tagging: Tagging


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (no static credentials)."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region],
            "interactiveMode": "Never",
        }
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": cluster_name, "user": user}],
            "contexts": [
                {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
            ],
            "current-context": cluster_name,
        },
        sort_keys=True,
    )


def public_access_cidrs(endpoint: EndpointConfig) -> list[str] | None:
    """Who may reach a public API endpoint; none when the endpoint is private only."""
    return [str(c) for c in endpoint.public_access_cidrs] if endpoint.public_access else None


def _assume_role(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


class Cluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    node_security_group_id: pulumi.Output[str]
    # ARN of each managed node group, by its config name: what the cluster autoscaler may scale.
    node_group_arns: dict[str, pulumi.Output[str]]
    provider: k8s.Provider

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Cluster", name, None, opts)
        cfg, tags = args.config, args.tagging
        child = pulumi.ResourceOptions(parent=self)
        pinned = versions.for_minor(cfg.kubernetes_version)

        key = self._secrets_key(name, cfg, tags, child)
        cluster = self._control_plane(name, args, key, child)
        issuer = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            thumbprint_lists=[_EKS_OIDC_THUMBPRINT],
            tags=tags(f"{cfg.name}-oidc"),
            opts=child,
        )

        access_entries = self._access_entries(name, cfg, cluster, tags, child)
        addons = self._addons(name, cfg, cluster, oidc, issuer, pinned, tags, child)
        node_role = self._node_role(name, cfg, tags, child)
        node_groups = [
            self._node_group(name, group, cluster, node_role, args, addons, child)
            for group in cfg.node_groups
        ]

        self.node_group_arns = {
            group.name: ng.arn for group, ng in zip(cfg.node_groups, node_groups, strict=True)
        }
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer_url = issuer
        self.kms_key_arn = key.arn
        self._publish(name, args, cluster, [*access_entries, *node_groups])

    def _secrets_key(
        self, name: str, cfg: ClusterConfig, tags: Tagging, child: pulumi.ResourceOptions
    ) -> aws.kms.Key:
        key = rotating_key(
            f"{name}-secrets",
            f"Envelope encryption of Kubernetes Secrets in {cfg.name}",
            tags,
            f"{cfg.name}-secrets",
            self,
        )
        aws.kms.Alias(
            f"{name}-secrets",
            name=f"alias/{cfg.name}-secrets",
            target_key_id=key.key_id,
            opts=child,
        )
        return key

    def _control_plane(
        self, name: str, args: ClusterArgs, key: aws.kms.Key, child: pulumi.ResourceOptions
    ) -> aws.eks.Cluster:
        """The EKS cluster, its IAM role and the log group it writes to."""
        cfg, tags = args.config, args.tagging
        role = aws.iam.Role(
            f"{name}-control-plane",
            assume_role_policy=_assume_role("eks.amazonaws.com"),
            tags=tags(f"{cfg.name}-control-plane"),
            opts=child,
        )
        role_attachment = aws.iam.RolePolicyAttachment(
            f"{name}-control-plane",
            role=role.name,
            policy_arn=f"{_POLICY}AmazonEKSClusterPolicy",
            opts=child,
        )
        # EKS writes into this group; creating it first lets us own its retention.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{cfg.name}/cluster",
            retention_in_days=cfg.log_retention_days,
            tags=tags(f"{cfg.name}-control-plane-logs"),
            opts=child,
        )
        endpoint = cfg.endpoint
        return aws.eks.Cluster(
            f"{name}-eks",
            name=cfg.name,
            version=cfg.kubernetes_version,
            role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=list(args.private_subnet_ids),
                endpoint_private_access=endpoint.private_access,
                endpoint_public_access=endpoint.public_access,
                public_access_cidrs=public_access_cidrs(endpoint),
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=key.arn),
                resources=["secrets"],
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            enabled_cluster_log_types=sorted(cfg.log_types),
            tags=tags(cfg.name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_attachment, log_group]),
        )

    def _publish(
        self,
        name: str,
        args: ClusterArgs,
        cluster: aws.eks.Cluster,
        ready: list[pulumi.Resource],
    ) -> None:
        """The cluster's outputs, and the Kubernetes provider the later layers deploy with."""
        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.name,
                cluster.endpoint,
                cluster.certificate_authority.apply(lambda ca: ca.data),
                args.region,
            ).apply(lambda v: kubeconfig(v[0], v[1], v[2], v[3]))
        )
        self.node_security_group_id = cluster.vpc_config.apply(
            lambda vc: vc.cluster_security_group_id or ""
        )
        # Consumers must not reach the API before the admins' access entries exist, nor install
        # charts before there are nodes to run them (and, on an upgrade, before the node groups
        # have rolled: charts move last).
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready),
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "endpoint": self.endpoint,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
                "kms_key_arn": self.kms_key_arn,
            }
        )

    def _access_entries(
        self,
        name: str,
        cfg: ClusterConfig,
        cluster: aws.eks.Cluster,
        tags: Tagging,
        child: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        created: list[pulumi.Resource] = []
        for i, arn in enumerate(cfg.admin_role_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{i}",
                cluster_name=cluster.name,
                principal_arn=arn,
                type="STANDARD",
                tags=tags(f"{cfg.name}-admin-{i}"),
                opts=child,
            )
            created.append(
                aws.eks.AccessPolicyAssociation(
                    f"{name}-admin-{i}",
                    cluster_name=cluster.name,
                    principal_arn=arn,
                    policy_arn="arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
                )
            )
        return created

    def _addons(
        self,
        name: str,
        cfg: ClusterConfig,
        cluster: aws.eks.Cluster,
        oidc: aws.iam.OpenIdConnectProvider,
        issuer: pulumi.Output[str],
        pinned: versions.MinorVersions,
        tags: Tagging,
        child: pulumi.ResourceOptions,
    ) -> list[aws.eks.Addon]:
        irsa = {
            "vpc-cni": ("aws-node", f"{_POLICY}AmazonEKS_CNI_Policy"),
            "aws-ebs-csi-driver": (
                "ebs-csi-controller-sa",
                f"{_POLICY}service-role/AmazonEBSCSIDriverPolicy",
            ),
        }
        before_nodes: list[aws.eks.Addon] = []
        for addon_name, version in pinned.addons.items():
            role_arn: pulumi.Output[str] | None = None
            if addon_name in irsa:
                sa, policy = irsa[addon_name]
                role_arn = IrsaRole(
                    f"{name}-{addon_name}",
                    IrsaRoleArgs(
                        oidc_provider_arn=oidc.arn,
                        oidc_issuer_url=issuer,
                        namespace="kube-system",
                        service_account=sa,
                        managed_policy_arns=[policy],
                        tags=tags(f"{cfg.name}-{addon_name}"),
                    ),
                    opts=child,
                ).role_arn
            addon = aws.eks.Addon(
                f"{name}-{addon_name}",
                cluster_name=cluster.name,
                addon_name=addon_name,
                addon_version=version,
                configuration_values=(
                    json.dumps(ADDON_CONFIGURATION[addon_name], sort_keys=True)
                    if addon_name in ADDON_CONFIGURATION
                    else None
                ),
                service_account_role_arn=role_arn,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="PRESERVE",
                tags=tags(f"{cfg.name}-{addon_name}"),
                # Explicit edge to the control plane's version: an upgrade bumps it first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster]),
            )
            if addon_name in _BEFORE_NODES:
                before_nodes.append(addon)
        return before_nodes

    def _node_role(
        self, name: str, cfg: ClusterConfig, tags: Tagging, child: pulumi.ResourceOptions
    ) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-nodes",
            assume_role_policy=_assume_role("ec2.amazonaws.com"),
            tags=tags(f"{cfg.name}-nodes"),
            opts=child,
        )
        # No CNI policy here: vpc-cni gets it through IRSA, so pods cannot borrow it.
        for policy in (
            "AmazonEKSWorkerNodePolicy",
            "AmazonEC2ContainerRegistryReadOnly",
            "AmazonSSMManagedInstanceCore",
        ):
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{policy}",
                role=role.name,
                policy_arn=f"{_POLICY}{policy}",
                opts=child,
            )
        return role

    def _node_group(
        self,
        name: str,
        group: NodeGroupConfig,
        cluster: aws.eks.Cluster,
        role: aws.iam.Role,
        args: ClusterArgs,
        addons: list[aws.eks.Addon],
        child: pulumi.ResourceOptions,
    ) -> aws.eks.NodeGroup:
        tags = args.tagging
        full = f"{args.config.name}-{group.name}"
        template = aws.ec2.LaunchTemplate(
            f"{name}-{group.name}",
            description=f"Nodes of {full}: IMDSv2 only, encrypted gp3 root volume",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                # One hop: pods cannot reach the node's instance credentials.
                http_put_response_hop_limit=1,
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=group.disk_size_gib,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )
            ],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags(full))
                for kind in ("instance", "volume")
            ],
            tags=tags(full),
            opts=child,
        )
        labels = {**group.labels, NODE_ROLE_LABEL: group.role.value}
        # Only pods that tolerate them land here (GPU groups: pods that ask for a GPU).
        taints = [
            aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value, effect=t.effect)
            for t in node_taints(group)
        ]
        return aws.eks.NodeGroup(
            f"{name}-{group.name}",
            cluster_name=cluster.name,
            # A prefix, not a fixed name: a replacement is created before the old group goes.
            node_group_name_prefix=f"{full}-",
            node_role_arn=role.arn,
            subnet_ids=list(args.private_subnet_ids),
            version=cluster.version,
            ami_type=group.ami_type,
            capacity_type=group.capacity_type,
            instance_types=group.instance_types,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=group.min_size, max_size=group.max_size, desired_size=group.desired_size
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(
                max_unavailable_percentage=group.max_unavailable_percent
            ),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            labels=labels,
            taints=taints,
            # Auto-discovery by the cluster autoscaler, which scales within minSize..maxSize.
            tags={**tags(full), **autoscaler_tags(args.config.name)},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=addons,
                # The cluster autoscaler owns the live size; config sets the bounds.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )
