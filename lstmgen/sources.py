"""Where the templates live, and a digest of them that generated headers carry.

No Jinja here: the runtime uses the digest to trust an existing generated module
without importing the renderer.
"""

import hashlib
from functools import lru_cache
from pathlib import Path


def templates_dir() -> Path:
    """Templates ship inside the wheel as lstmgen/templates; a checkout keeps them at the top."""
    packaged = Path(__file__).resolve().parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=None)
def templates_digest() -> str:
    """sha256 over every template's relative path and bytes, in sorted order."""
    root = templates_dir()
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.j2")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
