"""Facts about the Kubernetes platform shared by its layers: names and capacity."""
