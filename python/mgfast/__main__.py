"""``python -m mgfast``: the command line, where the ``mgfast`` script is not on PATH; and
``python -m mgfast --cmake-dir`` (``--include-dir``, ``--library``): where the C++ API's CMake
package, headers and library are (mgfast.cpp_api)."""

import sys

from . import cpp_api

_WHERE = {
    "--cmake-dir": cpp_api.get_cmake_dir,
    "--include-dir": cpp_api.get_include,
    "--library": cpp_api.get_library,
}


def _where(flag: str) -> int:
    try:
        print(_WHERE[flag]())
    except FileNotFoundError as e:
        print(f"mgfast: {e}", file=sys.stderr)
        return 1
    return 0


if len(sys.argv) == 2 and sys.argv[1] in _WHERE:
    sys.exit(_where(sys.argv[1]))
else:
    from .cli import main

    sys.exit(main())
