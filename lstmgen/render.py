"""Render a lowered context through its Jinja2 template and write the module atomically."""

import os
import tempfile
from pathlib import Path

import jinja2

from lstmgen.lower import cpu, cuda
from lstmgen.lower.plan import VariantKey
from lstmgen.sources import generator_digest, templates_dir

_LOWERINGS = {"cpu": cpu, "cuda": cuda}

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(templates_dir())),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


def render(key: VariantKey) -> str:
    """Python source of the module for `key`; compiled once here so a template bug names the template."""
    lowering = _LOWERINGS[key.target]
    ctx = lowering.lower(key)
    try:
        source = _ENV.get_template(lowering.TEMPLATE).render(ctx=ctx, generator_digest=generator_digest())
        compile(source, f"<{lowering.TEMPLATE} for {key.module_name}>", "exec")
    except (jinja2.TemplateError, SyntaxError) as err:
        raise RuntimeError(f"while generating {key.module_name} from templates/{lowering.TEMPLATE}: "
                           f"{type(err).__name__}: {err}") from err
    return source


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _current_umask()


def write_if_changed(path: Path, content) -> bool:
    """Write `content` (text, or bytes) atomically (temp file + os.replace), only when it differs.

    An unchanged file keeps its mtime, which Numba's disk cache and Python's bytecode cache key on.
    """
    data = content.encode() if isinstance(content, str) else content
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a shared cache must be readable
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return True


def generate(key: VariantKey, directory: Path) -> Path:
    """Render `key` into `directory`/<module_name>.py; returns the path."""
    path = Path(directory) / f"{key.module_name}.py"
    write_if_changed(path, render(key))
    return path
