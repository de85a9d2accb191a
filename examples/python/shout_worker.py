"""A papy worker in Python: the `py.*` functions of
examples/pipelines/python_node.toml. Run by the host, never by hand."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from papy_worker import function, serve  # noqa: E402


@function("py.shout")
def shout(text, suffix="!"):
    """Upper-cases a string and adds `suffix`."""
    if text == "boom":
        raise ValueError("cannot shout %r" % text)
    return text.upper() + suffix


@function("py.echo")
def echo(value):
    """Returns its input (for throughput figures: bench/python_worker.sh)."""
    return value


@function("py.pid")
def pid(value):
    """The worker's process id (for tests)."""
    return os.getpid()


if __name__ == "__main__":
    serve()
