"""Typed stack configuration: pydantic models per layer, validated before any resource."""

from infra.config.agents import AgentPoolConfig, AgentsConfig, ImageConfig, ResourcesConfig
from infra.config.cluster import ClusterConfig, NodeGroupConfig, NodeGroupRole, TaintConfig
from infra.config.cost import BudgetConfig, CostConfig
from infra.config.errors import NAMESPACE, ConfigError
from infra.config.loader import TOP_LEVEL_KEYS, load, load_from_mapping, require_secret
from infra.config.mesh import MeshConfig
from infra.config.monitoring import MonitoringConfig
from infra.config.network import NatMode, NetworkConfig
from infra.config.platform import Environment, LocalClusterConfig, PlatformConfig, SecretSpec
from infra.config.state import RedisConfig, RedisMode
from infra.config.tags import TagsConfig
from infra.config.vault import UnsealMode, VaultConfig

__all__ = [
    "NAMESPACE",
    "TOP_LEVEL_KEYS",
    "AgentPoolConfig",
    "AgentsConfig",
    "BudgetConfig",
    "ClusterConfig",
    "ConfigError",
    "CostConfig",
    "Environment",
    "ImageConfig",
    "LocalClusterConfig",
    "MeshConfig",
    "MonitoringConfig",
    "NatMode",
    "NetworkConfig",
    "NodeGroupConfig",
    "NodeGroupRole",
    "PlatformConfig",
    "RedisConfig",
    "RedisMode",
    "ResourcesConfig",
    "SecretSpec",
    "TagsConfig",
    "TaintConfig",
    "UnsealMode",
    "VaultConfig",
    "load",
    "load_from_mapping",
    "require_secret",
]
