"""The offline plan: the real program under Pulumi's mock engine, rendered to files."""
