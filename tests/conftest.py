"""The suite's fixtures come as plugins; helpers are plain modules (tests/stacks.py,
tests/servers.py, tests/runtime/processes.py), imported, never taken from a conftest."""

# The real control plane (`kube`) and the stacks' plans (`plan_dirs`, `plans`) for every folder.
pytest_plugins = ["tests.kubeapi", "tests.plans", "tests.redis_backends"]
