"""Builds the extension mixq._mixq with CMake (the project's own build, python/CMakeLists.txt).

MIXQ_BUILD_DIR chooses the CMake build tree (default: build/ in the source tree, reused when it
exists); CMAKE_BUILD_PARALLEL_LEVEL the build's jobs. The interpreter running pip is the one the
module is built for."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = Path(os.environ.get("MIXQ_BUILD_DIR", ROOT / "build")).resolve()
        build.mkdir(parents=True, exist_ok=True)
        if not (build / "CMakeCache.txt").exists():
            subprocess.check_call(["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                                   f"-DPYTHON_EXECUTABLE={sys.executable}"])
        else:
            subprocess.check_call(["cmake", f"-DPYTHON_EXECUTABLE={sys.executable}", str(build)])
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.check_call(["cmake", "--build", str(build), "--target", "mixq_python", "-j", jobs])
        built = list((build / "python" / "mixq").glob("_mixq*.so"))
        if not built:
            raise RuntimeError(f"the build left no _mixq*.so in {build / 'python' / 'mixq'}")
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], target)


setup(ext_modules=[Extension("mixq._mixq", sources=[])], cmdclass={"build_ext": CMakeBuild})
