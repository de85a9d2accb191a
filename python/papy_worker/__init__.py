"""Python functions as papy pipeline nodes.

A papy host runs a pipeline; the nodes whose resource is a worker command
(``kind = "remote"``, ``command = "python3 my_worker.py"``) send their items
to this process, which runs the functions registered here by name::

    from papy_worker import function, serve

    @function("py.shout")
    def shout(text, suffix="!"):
        return text.upper() + suffix

    if __name__ == "__main__":
        serve()

The pipeline names the function and lists it in the resource's
``functions`` so ``papy check`` accepts a name the host does not hold::

    [resources.py]
    kind = "remote"
    remote = [{ command = "python3 my_worker.py", workers = 2 }]
    functions = ["py.shout"]

    [[pipers]]
    name = "shout"
    resource = "py"
    worker = [{ function = "py.shout", args = ["!!"] }]

Each call gets the item's input (one value, or a list of values for a node
with several inputs) followed by the node's arguments, positionally. A
Python exception becomes an error item of kind Function whose message ends
with the traceback's last line; the run goes on. The wire protocol is
docs/protocol.md; this module speaks version 2.1 of it.
"""

import inspect
import os
import struct
import sys
import traceback

import msgpack

__all__ = ["function", "functions", "serve", "state", "GREETING", "MAJOR", "MINOR"]

#: Written before the first frame, so a host can skip banners.
GREETING = b"\0papy-worker\0"
#: The protocol version spoken.
MAJOR, MINOR = 2, 1
#: Error kind codes (docs/protocol.md).
KIND_FUNCTION, KIND_PANIC, KIND_CONVERSION = 0, 1, 2
#: The largest frame read or written (the host's default limit).
MAX_FRAME = 256 << 20
#: The papy version this SDK follows.
VERSION = "0.1.0"

_registry = {}
_state = None
#: The id of the Result answering the host's init (protocol 2.1).
INIT_ID = (1 << 64) - 1


def state():
    """This worker's state: what the resource's ``init`` function returned
    when the worker started (``None`` without one)."""
    return _state


def function(name=None, inputs=1):
    """Registers the decorated function under ``name`` (default: its
    Python name). ``inputs`` is how many input values an item brings: with 1
    (the default) the function gets the value itself, with more (a join) a
    list of them, one per input pipe."""

    def register(f):
        key = name or f.__name__
        if key in _registry:
            raise ValueError("a papy function named %r is already registered" % key)
        _registry[key] = (f, inputs)
        return f

    if callable(name):
        f, name = name, None
        return register(f)
    return register


def functions():
    """The registered function names, sorted."""
    return sorted(_registry)


def signatures():
    """What the Hello says of each function's parameters (protocol 2.1):
    the parameters after the input, optional when they have a default;
    ``None`` for ``*args`` functions."""
    out = []
    for name in functions():
        f, inputs = _registry[name]
        try:
            params = list(inspect.signature(f).parameters.values())[1:]
        except (TypeError, ValueError):
            params = None
        # The host sends arguments by position: a function that takes any,
        # or some by keyword only, is announced without a parameter list.
        if params is not None and any(
            p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY) for p in params
        ):
            params = None
        out.append({
            "name": name,
            "params": None if params is None else [
                {"name": p.name, "optional": p.default is not p.empty, "ty": ""} for p in params
            ],
            "inputs": inputs,
            "doc": (inspect.getdoc(f) or "").strip(),
        })
    return out


def _read_exact(stream, n):
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None if not data else data
        data += chunk
    return data


def _read_frame(stream):
    head = _read_exact(stream, 4)
    if head is None:
        return None
    if len(head) < 4:
        raise EOFError("truncated frame header")
    (length,) = struct.unpack(">I", head)
    if length > MAX_FRAME:
        raise ValueError("a frame of %d bytes is over the limit" % length)
    body = _read_exact(stream, length)
    if body is None or len(body) < length:
        raise EOFError("truncated frame")
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


def _write_frame(stream, frame):
    body = msgpack.packb(frame, use_bin_type=True)
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def _unpack_values(data):
    u = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data) + 1)
    u.feed(data)
    return list(u)


def _error(kind, message, function=None, node=None, index=None):
    return {
        "kind": kind,
        "message": message,
        "function": function,
        "path": [node] if node else [],
        "index": index,
    }


def _exception_message(exc):
    """The exception with the traceback's last line (where and what)."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = ""
    if tb:
        last = tb[-1]
        where = " (%s:%d in %s)" % (last.filename, last.lineno, last.name)
    last_line = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return last_line + where


def _run_chain(chain, value, declared=()):
    """Runs the calls of a chain on one input; returns (value, error)."""
    for call in chain:
        name = call.get("function")
        if declared and name not in declared:
            return None, (KIND_FUNCTION, "%r is not among the functions this worker's host declared" % name, name)
        entry = _registry.get(name)
        if entry is None:
            return None, (KIND_FUNCTION, "this Python worker has no function named %r" % name, name)
        f, _inputs = entry
        try:
            value = f(value, *call.get("args", []))
        except Exception as exc:  # every exception becomes an error item
            return None, (KIND_FUNCTION, _exception_message(exc), name)
    return value, None


def _answer(task, declared=()):
    chain = task.get("chain", [])
    node = task.get("node")
    raw = task.get("indices", b"")
    indices = [struct.unpack_from("<Q", raw, 8 * i)[0] for i in range(len(raw) // 8)]
    inboxes = task.get("inboxes", {})
    if "Single" in inboxes:
        items = _unpack_values(inboxes["Single"])
    else:
        items = inboxes.get("Many", [])
    packer = msgpack.Packer(use_bin_type=True)
    values = bytearray()
    errors = []
    for pos, item in enumerate(items):
        value, err = _run_chain(chain, item, declared)
        if err is not None:
            kind, message, fname = err
            index = indices[pos] if pos < len(indices) else None
            errors.append([pos, _error(kind, message, fname, node, index)])
            value = None
        try:
            values += packer.pack(value)
        except Exception as exc:  # a result msgpack cannot carry
            index = indices[pos] if pos < len(indices) else None
            # The chain's last function returned it.
            fname = chain[-1].get("function") if chain else None
            message = "result of type %s cannot be sent: %s" % (type(value).__name__, exc)
            errors.append([pos, _error(KIND_CONVERSION, message, fname, node, index)])
            values += packer.pack(None)
    return {"Result": {"id": task["id"], "results": {"values": bytes(values), "errors": errors}}}


def _protocol_stdout():
    """The frames' channel: a duplicate of file descriptor 1, which is then
    pointed at stderr, so that nothing else (``print``, a C extension, a
    subprocess inheriting fd 1) can write into the frames."""
    sys.stdout.flush()
    frames = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(frames, "wb")


def serve(stdin=None, stdout=None):
    """Serves the host on stdin/stdout until it says Shutdown or closes.

    The frames go to this process's stdout, which nothing else may write
    to: with the default streams, file descriptor 1 is duplicated for the
    frames and then pointed at stderr, so ``print``, C extensions and
    subprocesses that write to stdout end up on stderr."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or _protocol_stdout()
    # Functions that print must not corrupt the frames.
    sys.stdout = sys.stderr
    stdout.write(GREETING)
    hello = {
        "major": MAJOR,
        "minor": MINOR,
        "codec": "msgpack",
        "papy_version": VERSION,
        "functions": functions(),
        "plugins": [],
        "signatures": signatures(),
    }
    _write_frame(stdout, {"Hello": hello})
    theirs = _read_frame(stdin)
    if theirs is None:
        return
    peer = theirs.get("Hello") if isinstance(theirs, dict) else None
    # Since protocol 2.1 the host lists the functions its pipeline sends;
    # nothing else runs here.
    declared = frozenset(peer.get("functions") or ()) if peer else frozenset()
    if not peer or peer.get("major") != MAJOR:
        version = "%s.%s" % (peer.get("major"), peer.get("minor")) if peer else "no Hello"
        _write_frame(stdout, {"Fatal": {"message": "protocol version mismatch: host speaks %s, this worker %d.%d" % (version, MAJOR, MINOR)}})
        return
    init = peer.get("init")
    if init:
        # Once, before any task: the result is this worker's state. A
        # failure answers with the error and ends the worker.
        global _state
        value, err = _run_chain([init], None, declared)
        errors = []
        if err is not None:
            kind, message, fname = err
            errors.append([0, _error(kind, message, fname, None, None)])
        else:
            _state = value
        _write_frame(stdout, {"Result": {"id": INIT_ID, "results": {"values": msgpack.packb(None), "errors": errors}}})
        if errors:
            return
    while True:
        frame = _read_frame(stdin)
        if frame is None or frame == "Shutdown":
            return
        if isinstance(frame, dict) and "Task" in frame:
            _write_frame(stdout, _answer(frame["Task"], declared))
        elif isinstance(frame, dict) and "Fatal" in frame:
            return
        else:
            _write_frame(stdout, {"Fatal": {"message": "unexpected frame %r" % (frame if isinstance(frame, str) else list(frame))}})
            return
