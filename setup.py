"""Build hook for the optional C element walker; everything else is declared in pyproject.toml.

The extension is optional: where no C compiler is available the install still succeeds and the
survey runs the pure-Python walker, which gives the same results, more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "container_app.survey.dicom._walk",
            sources=["container_app/survey/dicom/_walk.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    ]
)
