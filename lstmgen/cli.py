"""`lstmgen compile | explain | info`: exit code 2 with a one-line message on bad input."""

import argparse
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

from lstmgen.blas import choice as blas_choice
from lstmgen.blas import mkl_runtime
from lstmgen import native
from lstmgen.devices import unavailable
from lstmgen.errors import SpecError
from lstmgen.lower.plan import BLAS_CHOICES, KNOWN_TARGETS, REQUESTABLE, TARGETS, explain, generation_key
from lstmgen.spec import LSTMSpec
from lstmgen.version import GENERATOR_VERSION


# Model files `lstmgen compile` reads; any other path is a spec JSON file.
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5", ".onnx")


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit code 2."""


def load_spec(path: str) -> LSTMSpec:
    """A spec file holds `LSTMSpec.to_json()`, a Keras LSTM config, or {"class_name": "LSTM", "config": ...}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"{path}: cannot read the spec file ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not a JSON file ({err})") from None
    if isinstance(data, dict) and "class_name" in data and "config" in data:
        if data["class_name"] not in ("LSTM", "keras.layers.LSTM"):
            raise UsageError(f"{path}: class_name={data['class_name']!r}, expected an LSTM layer")
        data = data["config"]
    try:
        return LSTMSpec.from_config(data)
    except SpecError as err:
        raise UsageError(f"{path}: {err}") from None


def compile_spec(spec: LSTMSpec, output: Path, target: str, blas: str = "numpy") -> Path:
    from lstmgen.render import generate  # Jinja only for the commands that render

    return generate(generation_key(spec, target, blas), output)


def compile_model(path: str, output: Path, target: str, blas: str = "numpy") -> list:
    """One line per LSTM layer of the model file: its key, module and weights file."""
    from lstmgen.export import export_model

    if not Path(path).is_file():
        raise UsageError(f"{path}: no such model file")
    return [f"{e.key}: {e.module} {e.weights}" for e in export_model(path, output, target, blas)]


def info() -> str:
    lines = [f"lstmgen {GENERATOR_VERSION} on Python {platform.python_version()}"]
    for package in ("numpy", "numba", "llvmlite", "jinja2", "scipy"):
        try:
            lines.append(f"  {package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            lines.append(f"  {package} not installed")
    mkl = mkl_runtime()
    lines.append(f"cpu BLAS: {'mkl (' + mkl + ')' if mkl else 'numpy (the mkl wheel is not installed)'}"
                 f"; a layer takes {blas_choice()}")
    lines.append(f"native libraries: {native.status()}")
    lines.append("targets:")
    for target in KNOWN_TARGETS:
        state = "available" if target in TARGETS else "not available in this build"
        why_not = unavailable().get(target)
        if target in TARGETS and why_not:
            state = f"built, but cannot run here: {why_not}"
        lines.append(f"  {target}: {state}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstmgen", description="Compile Keras LSTM layers into Numba code.")
    commands = parser.add_subparsers(dest="command", required=True)
    compile_cmd = commands.add_parser(
        "compile", help="generate the module for a spec (prints its path), or the modules and "
        "weights of every LSTM layer in a model file (prints `layer: module weights` lines)")
    compile_cmd.add_argument("spec", nargs="+", help="spec JSON file(s), or .keras / .h5 / .onnx model files")
    compile_cmd.add_argument("-o", "--output", default="generated", help="directory (default: generated)")
    compile_cmd.add_argument("--target", default="auto", choices=REQUESTABLE)
    compile_cmd.add_argument("--blas", default="numpy", choices=BLAS_CHOICES,
                             help="the BLAS cpu code calls (default numpy: the module runs wherever "
                                  "numba does; mkl needs the mkl wheel where it is imported)")
    explain_cmd = commands.add_parser("explain", help="which target runs a spec, and why")
    explain_cmd.add_argument("spec")
    explain_cmd.add_argument("--target", default="auto", choices=REQUESTABLE)
    commands.add_parser("info", help="versions and available targets")
    # Listed for --help only: main() hands `bench ...` to lstmgen.bench before parsing.
    commands.add_parser("bench", help="CPU target vs ONNX Runtime and PyTorch (see lstmgen bench -h)")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from lstmgen.bench import main as bench

        return bench(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "compile":
            for path in args.spec:
                if Path(path).suffix.lower() in MODEL_SUFFIXES:
                    print("\n".join(compile_model(path, Path(args.output), args.target, args.blas)))
                else:
                    print(compile_spec(load_spec(path), Path(args.output), args.target, args.blas))
        elif args.command == "explain":
            print(explain(load_spec(args.spec), args.target, unavailable()))
        else:
            print(info())
    except (UsageError, ValueError, ImportError) as err:  # ImportError: a missing extra, named
        print(f"lstmgen: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
