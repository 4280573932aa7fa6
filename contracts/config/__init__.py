"""Typed stack configuration: pydantic models per layer, validated before any resource."""

from contracts.config.agents import AgentPoolConfig, AgentsConfig, ImageConfig, ResourcesConfig
from contracts.config.cluster import ClusterConfig, NodeGroupConfig, NodeGroupRole, TaintConfig
from contracts.config.cost import BudgetConfig, CostConfig
from contracts.config.database import CredentialsMode, DatabaseConfig
from contracts.config.errors import NAMESPACE, ConfigError
from contracts.config.loader import TOP_LEVEL_KEYS, load_from_mapping
from contracts.config.mesh import MeshConfig
from contracts.config.monitoring import MonitoringConfig
from contracts.config.network import NatMode, NetworkConfig
from contracts.config.platform import Environment, LocalClusterConfig, PlatformConfig, SecretSpec
from contracts.config.state import RedisConfig, RedisMode
from contracts.config.tags import TagsConfig
from contracts.config.vault import UnsealMode, VaultConfig

__all__ = [
    "NAMESPACE",
    "TOP_LEVEL_KEYS",
    "AgentPoolConfig",
    "AgentsConfig",
    "BudgetConfig",
    "ClusterConfig",
    "ConfigError",
    "CostConfig",
    "CredentialsMode",
    "DatabaseConfig",
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
    "load_from_mapping",
]
