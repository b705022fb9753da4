"""Type stubs of the compiled modules, generated from the built modules (scripts/gen_stubs.sh).

    python scripts/stubs.py write            # regenerate python/mgfast/_core.pyi
    python scripts/stubs.py check            # exit 1 if it is not current

(mgfast._gpu's stub is written by hand: the module builds only with CUDA and cuDNN; where it
does, gen_stubs.sh and tests/test_stubs.py check it with stubtest.)

pybind11-stubgen writes what the bindings declare; this script then gives module constants their
element types (stubgen sees only ``list`` or ``dict``) and leaves their values out (some depend on
the build: built_with_cuda, the version), and types the few engine signatures whose bindings take
or return untyped Python objects (src/python/bind_network.hpp, src/python/gpu/bind_gpu.cpp). Each
replacement must match exactly once in its function's signature, so that a change in the
bindings fails here loudly instead of leaving a stale type behind.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.metadata
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "mgfast"

F32 = "numpy.typing.NDArray[numpy.float32]"
IVAR = "numpy.typing.ArrayLike | None = None"

# Element types of the module constants, by module.
CONSTANTS: dict[str, dict[str, str]] = {
    "_core": {
        "ARMS": "list[tuple[str, float, float, int, int]]",  # name, lo, hi, first, end pixel
        "LINES": "dict[str, tuple[float, float, float]]",  # λ, f, γ
        "PIXEL_FLAGS": "dict[str, int]",
        "SPECTRUM_FLAGS": "dict[str, int]",
        "QUASAR_EMISSION_LINES": "list[tuple[float, float, float]]",  # rest Å, peak, FWHM km/s
    },
}

# Per function (or method) name: (generated text, its replacement) within its signature line,
# each to be found exactly once there.
IVAR_ARG = ("ivar: typing.Any = None", f"ivar: {IVAR}")
NO_LIST_DEFAULT = ("= []", "= ...")
PAIR = f"tuple[{F32}, {F32}]"


def engine(cls: str) -> dict[str, list[tuple[str, str]]]:
    """The fixes of an engine class (def_engine_calls in src/python/bind_network.hpp)."""
    return {
        f"{cls}.infer": [IVAR_ARG, ("-> tuple:", f"-> {PAIR}:")],
        f"{cls}.infer_dual": [IVAR_ARG, ("-> typing.Any:", f"-> {PAIR}:")],
        f"{cls}.infer_map": [IVAR_ARG, ("-> typing.Any:", f"-> {F32}:")],
    }


SIGNATURES: dict[str, dict[str, list[tuple[str, str]]]] = {
    "_core": {
        **engine("CpuNetwork"),
        "emulate_gpu_plan": [
            IVAR_ARG,
            NO_LIST_DEFAULT,
            ("-> typing.Any:", f"-> {F32} | {PAIR}:"),
        ],
    },
}
_CLASS = re.compile(r"^class (\w+)")
_DEF = re.compile(r"^\s*def (\w+)\(")

_CONSTANT = re.compile(r"^(?P<name>\w+): (?P<type>[\w.\[\], ]+?)(?: = .*)?$")


def generated(module: str, out: Path) -> str:
    """pybind11-stubgen's stub of mgfast.<module>, completed as described above."""
    subprocess.run(
        [sys.executable, "-m", "pybind11_stubgen", f"mgfast.{module}", "-o", str(out),
         "--exit-code"],
        check=True,
    )  # fmt: skip
    text = (out / "mgfast" / f"{module}.pyi").read_text()
    fixes, unused = SIGNATURES[module], set(SIGNATURES[module])
    constants = dict(CONSTANTS[module])
    lines = []
    cls = ""
    for line in text.splitlines():
        c = _CLASS.match(line)
        if c or not line.startswith(" "):
            cls = c[1] + "." if c else ""
        d = _DEF.match(line)
        name = d and (cls if line.startswith(" ") else "") + d[1]
        if name and name in fixes:
            unused.discard(name)
            for old, new in fixes[name]:
                if line.count(old) != 1:
                    raise SystemExit(f"{module}.{name}: not one {old!r}: update scripts/stubs.py")
                line = line.replace(old, new)
        if line.startswith("__all__"):
            continue  # stubgen's list of the public names: the module itself has no __all__
        m = _CONSTANT.match(line)
        if m:
            name, kind = m["name"], m["type"]
            if kind in ("list", "dict", "tuple", "set"):
                if name not in constants:
                    raise SystemExit(f"{module}.{name}: give its element type in scripts/stubs.py")
                kind = constants.pop(name)
            line = f"{name}: {kind}"
        lines.append(line)
    if unused:
        raise SystemExit(f"{module}: no functions {sorted(unused)}: update scripts/stubs.py")
    if constants:
        raise SystemExit(f"{module}: no constants {sorted(constants)}: update scripts/stubs.py")
    stubgen = importlib.metadata.version("pybind11-stubgen")
    head = (
        f"# Type stub of mgfast.{module}, generated from the built module by scripts/gen_stubs.sh "
        f"(pybind11-stubgen {stubgen}).\n"
        "# Do not edit: change the bindings (or scripts/stubs.py) and regenerate.\n"
    )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("write", "check"))
    args = p.parse_args(argv)
    stale = 0
    with tempfile.TemporaryDirectory() as tmp:
        for module in ("_core",):
            path = PACKAGE / f"{module}.pyi"
            new = generated(module, Path(tmp))
            if args.action == "write":
                path.write_text(new)
                print(f"wrote {path.relative_to(ROOT)}")
                continue
            old = path.read_text() if path.exists() else ""
            body = [line for line in new.splitlines() if not line.startswith("# ")]
            if body != [line for line in old.splitlines() if not line.startswith("# ")]:
                stale += 1
                diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="")
                print(f"{path.relative_to(ROOT)} is not current (scripts/gen_stubs.sh):")
                print("\n".join(list(diff)[:60]))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
