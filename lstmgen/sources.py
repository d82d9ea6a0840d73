"""Where the templates live, and a digest of the generator that generated headers carry.

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


# The Python that turns a variant key into source, besides the templates: a change to any of
# them (an activation's code, a lowering rule) must make cached modules stale too. (What a spec
# means reaches a module through the variant key, whose hash names the module.)
_GENERATOR_SOURCES = ("lower/*.py", "activations.py", "render.py")


@lru_cache(maxsize=None)
def generator_digest() -> str:
    """sha256 over every template's and generator source's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    files = [(templates_dir(), path) for path in templates_dir().rglob("*.j2")]
    files += [(package, path) for pattern in _GENERATOR_SOURCES for path in package.glob(pattern)]
    for root, path in sorted(files, key=lambda pair: pair[1].relative_to(pair[0]).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
