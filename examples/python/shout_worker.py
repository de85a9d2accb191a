"""A papy worker in Python: the `py.*` functions of
examples/pipelines/python_node.toml. Run by the host, never by hand."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from papy_worker import function, serve, state  # noqa: E402


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


@function("py.count_init")
def count_init(_input, path):
    """An init: appends a line to `path` (to count how often it ran) and
    returns this worker's greeting, which `py.greet` uses."""
    with open(path, "a") as f:
        f.write("init %d\n" % os.getpid())
    return "hello from %d" % os.getpid()


@function("py.greet")
def greet(value):
    """The item with this worker's state (set by its init)."""
    return [value, state()]


@function("py.slow_pid")
def slow_pid(value, seconds, mark=None):
    """Sleeps `seconds`, then returns [value, the worker's process id]; with
    `mark`, first touches the file `mark/PID` (tests see who is busy)."""
    import time
    if mark:
        open(os.path.join(mark, str(os.getpid())), "a").close()
    time.sleep(seconds)
    return [value, os.getpid()]


@function("py.pid")
def pid(value):
    """The worker's process id (for tests)."""
    return os.getpid()


if __name__ == "__main__":
    serve()
