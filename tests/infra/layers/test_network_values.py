"""The network and cluster layers' pure pieces, called directly, and what the real plan command
renders from them for each AWS stack."""

from __future__ import annotations

import pytest

from contracts.config import NatMode, load_from_mapping
from infra.layers.cluster import public_access_cidrs
from infra.layers.network import PUBLIC_SUBNET_TAGS, nat_of_zone, private_subnet_tags
from infra.plan.document import Plan, PlanResource
from tests.stacks import stack_values

AWS_STACKS = ("staging", "prod")


def _named(plan: Plan, typ: str) -> dict[str, PlanResource]:
    return {r.name: r for r in plan.resources if r.type == typ}


@pytest.mark.parametrize("stack", AWS_STACKS)
@pytest.mark.parametrize("mode", list(NatMode))
def test_each_zone_leaves_through_its_own_nat_or_the_single_one(stack: str, mode: NatMode) -> None:
    # Not validated again: prod's rule (perAz only) is the config's business, not the routing's.
    network = load_from_mapping(stack_values(stack)).network.model_copy(update={"nat": mode})
    zones = network.availability_zones
    used = [nat_of_zone(i, network.nat_gateway_count) for i in range(len(zones))]
    assert all(0 <= n < network.nat_gateway_count for n in used)
    if mode is NatMode.PER_AZ:
        # A zone's outage takes only its own egress with it.
        assert used == list(range(len(zones)))
    else:
        assert set(used) == {0}


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_the_plan_routes_each_private_zone_through_the_nat_of_its_mode(
    plans: dict[str, Plan], stack: str
) -> None:
    network = load_from_mapping(stack_values(stack)).network
    zones = network.availability_zones
    nats = _named(plans[stack], "aws:ec2/natGateway:NatGateway")
    routes = _named(plans[stack], "aws:ec2/route:Route")
    for i, az in enumerate(zones):
        route = routes[f"network-private-{az}-default"]
        (nat,) = [n for n in nats.values() if n.urn in route.dependencies]
        assert nat.name == f"network-nat-{zones[nat_of_zone(i, network.nat_gateway_count)]}"


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_private_subnets_are_shared_with_the_stacks_cluster_and_public_ones_are_not(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    (cluster,) = _named(plan, "aws:eks/cluster:Cluster").values()
    expected = private_subnet_tags(cluster.inputs["name"])
    assert expected[f"kubernetes.io/cluster/{cluster.inputs['name']}"] == "shared"
    subnets = _named(plan, "aws:ec2/subnet:Subnet").values()
    private = [s for s in subnets if "-private-" in s.name]
    public = [s for s in subnets if "-public-" in s.name]
    assert private and public
    for subnet in private:
        assert expected.items() <= subnet.inputs["tags"].items(), subnet.name
        assert not PUBLIC_SUBNET_TAGS.keys() & subnet.inputs["tags"].keys(), subnet.name
    for subnet in public:
        assert PUBLIC_SUBNET_TAGS.items() <= subnet.inputs["tags"].items(), subnet.name
        assert not expected.keys() & subnet.inputs["tags"].keys(), subnet.name


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_a_public_endpoint_lists_its_allowed_cidrs_and_a_private_one_none(stack: str) -> None:
    endpoint = load_from_mapping(stack_values(stack)).cluster.endpoint
    cidrs = public_access_cidrs(endpoint)
    if endpoint.public_access:
        assert cidrs == [str(c) for c in endpoint.public_access_cidrs]
        assert cidrs and all(isinstance(c, str) and "/" in c for c in cidrs)
    else:
        assert cidrs is None
    public = endpoint.model_copy(update={"public_access": True})
    assert public_access_cidrs(public) == [str(c) for c in endpoint.public_access_cidrs]
    private = endpoint.model_copy(update={"public_access": False})
    assert public_access_cidrs(private) is None
