"""Where the C++ API lives in this installation: libmgfast, its headers and its CMake package,
shipped inside the package (``mgfast/lib``, ``mgfast/include``, ``mgfast/lib/cmake/mgfast``), as
pybind11 ships its own. A C++ pipeline finds it with

    cmake -Dmgfast_DIR="$(python -m mgfast --cmake-dir)" ...    # then find_package(mgfast)

(docs/cpp_api.md; examples/cpp)."""

from __future__ import annotations

import sys
from pathlib import Path


def _find(*parts: str) -> Path:
    """The first of the package's directories (an editable install has two) holding parts."""
    for root in sys.modules[__package__].__path__:
        p = Path(root).joinpath(*parts)
        if p.exists():
            return p
    raise FileNotFoundError(
        f"mgfast/{'/'.join(parts)} is not installed: this mgfast was installed without its C++ "
        "API (reinstall it with pip, which builds libmgfast)"
    )


def get_cmake_dir() -> str:
    """The directory of mgfastConfig.cmake: pass it as ``mgfast_DIR`` (or put it on
    ``CMAKE_PREFIX_PATH``) for ``find_package(mgfast)``, which gives the target mgfast::mgfast."""
    return str(_find("lib", "cmake", "mgfast", "mgfastConfig.cmake").parent)


def get_include() -> str:
    """The directory holding mgfast/detector.hpp, mgfast/engine.hpp and mgfast/model.hpp."""
    return str(_find("include", "mgfast", "detector.hpp").parent.parent)


def get_library() -> str:
    """The path of libmgfast.so."""
    return str(_find("lib", "libmgfast.so"))


__all__ = ["get_cmake_dir", "get_include", "get_library"]
