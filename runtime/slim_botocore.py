"""Keep only the service models the runtime calls in botocore's data (run at image build).

botocore ships the API model of every AWS service (~27 MB); the worker calls S3 (its pool's
bucket, runtime/worker/artifacts.py) and STS (IRSA's web identity) only. The image's build and
`scripts/measure-runtime-venv` run `python -m runtime.slim_botocore` after the install; a client
for any other service then fails at once with botocore's UnknownServiceError.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

__all__ = ["KEEP", "slim"]

KEEP: Final = frozenset({"s3", "sts"})


def slim(data: Path) -> list[str]:
    """Remove every service directory of `data` but KEEP's; the names removed."""
    removed = []
    for entry in sorted(data.iterdir()):
        if entry.is_dir() and entry.name not in KEEP:
            shutil.rmtree(entry)
            removed.append(entry.name)
    return removed


if __name__ == "__main__":
    import botocore

    gone = slim(Path(botocore.__file__).parent / "data")
    print(f"botocore: kept {sorted(KEEP)}, removed {len(gone)} service models")
