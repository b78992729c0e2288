"""Build the Cython extensions under chronosdb/ext.

Every ``chronosdb/ext/*.pyx`` becomes the extension ``chronosdb.ext.<name>``, compiled against
numpy and the C helpers in ``include/``.

The build also copies docs/ into the package as ``chronosdb/_docs`` (the server renders them
at /docs), so a non-editable install carries them.

Knobs (environment variables):
  CHRONOSDB_DEBUG=1      annotate HTML, line tracing, C asserts on, -O0 -g (a debug build)
  CHRONOSDB_ONLY=a,b     build only these modules (used while one module is being edited)
"""
import glob
import os
import shutil

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

DEBUG = os.environ.get("CHRONOSDB_DEBUG") == "1"
ONLY = {m for m in os.environ.get("CHRONOSDB_ONLY", "").split(",") if m}

compile_args = ["-O0", "-g3", "-UNDEBUG"] if DEBUG else ["-O3", "-fno-strict-aliasing"]
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    macros += [("CYTHON_TRACE_NOGIL", "1"), ("CYTHON_TRACE", "1")]

extensions = []
for pyx in sorted(glob.glob(os.path.join("chronosdb", "ext", "*.pyx"))):
    name = os.path.splitext(os.path.basename(pyx))[0]
    if ONLY and name not in ONLY:
        continue
    extensions.append(
        Extension(
            f"chronosdb.ext.{name}",
            [pyx],
            include_dirs=["include", numpy.get_include()],
            define_macros=macros,
            extra_compile_args=compile_args,
        )
    )

directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG,
    "embedsignature": True,
}
if DEBUG:
    directives["linetrace"] = True



class build_py_with_docs(build_py):
    """Also copy docs/ into the built package as chronosdb/_docs (served at /docs)."""

    def run(self):
        super().run()
        if os.path.isdir("docs"):
            target = os.path.join(self.build_lib, "chronosdb", "_docs")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree("docs", target, ignore=shutil.ignore_patterns(".*", "*.tmp"))


setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG),
    cmdclass={"build_py": build_py_with_docs},
)
