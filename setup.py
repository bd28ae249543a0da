"""Build the Cython core ``srt._core``.

``SRT_DEBUG=1`` builds it with line tracing, bounds and wraparound checks and an
annotated HTML report, the way asyncpg's ``ASYNCPG_DEBUG`` does.
"""

from __future__ import annotations

import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("SRT_DEBUG", "") not in ("", "0")

directives = {"language_level": "3", "embedsignature": True}
macros: list[tuple[str, str | None]] = []
if DEBUG:
    directives.update(linetrace=True, boundscheck=True, wraparound=True, profile=True)
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    compile_args = ["-O0", "-g"]
else:
    directives.update(boundscheck=False, wraparound=False)
    compile_args = ["-O2"]

extensions = [
    Extension(
        "srt._core",
        ["src/srt/_core.pyx"],
        # (the .pxi files are parts of _core.pyx, included in order)
        depends=[
            "src/srt/_utf8.h",
            "src/srt/_utf8_avx2.h",
            *sorted(glob.glob("src/srt/_core_*.pxi")),
        ],
        define_macros=macros,
        extra_compile_args=compile_args,
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG),
)
