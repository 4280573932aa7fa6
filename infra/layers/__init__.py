"""One ComponentResource per platform layer; `infra/__main__.py` wires them together."""
