"""nftables commands run in a router's namespace without starting a process: libnftables
(the library the ``nft`` tool is made of) called through ctypes from a short-lived thread
that has entered the namespace (``setns`` moves only the calling thread).

Starting ``ip netns exec ns nft -f`` costs tens of milliseconds on a busy host; this costs
well under one, which is what lets a single rule change be cheap. Where libnftables cannot
be loaded, ``run`` falls back to the ``nft`` command.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

from core.errors import ResourceUnavailableError

from . import system

CLONE_NEWNET = 0x40000000

_lib = None
_lib_error: str | None = None
_lock = threading.Lock()


def _library():
    global _lib, _lib_error
    with _lock:
        if _lib is None and _lib_error is None:
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("nftables") or "libnftables.so.1", use_errno=True)
                lib.nft_ctx_new.restype = ctypes.c_void_p
                lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
                lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
                lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
                lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
                lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
                lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
                lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
                lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
                lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
                lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
                _lib = lib
            except (OSError, AttributeError) as exc:
                _lib_error = str(exc)
    return _lib


def available() -> bool:
    return _library() is not None


def run(namespace: str, script: str, *, handles: bool = False) -> str:
    """Run nft commands (``nft -f`` input) in ``namespace``; return nft's output. Raises 534
    with nft's message when the commands fail (nftables then changed nothing: a buffer is
    one transaction)."""
    lib = _library()
    if lib is None:
        argv = ["nft"] + (["-a"] if handles else []) + ["-f", "-"]
        return system.run(*argv, ns=namespace, input=script).stdout
    result: dict = {}

    def work():
        try:
            fd = os.open(f"{system.NETNS_DIR}/{namespace}", os.O_RDONLY)
        except FileNotFoundError:
            result["error"] = f"namespace {namespace} does not exist"
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                result["error"] = f"setns into {namespace} failed: {os.strerror(ctypes.get_errno())}"
                return
        finally:
            os.close(fd)
        ctx = lib.nft_ctx_new(0)
        try:
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            if handles:
                lib.nft_ctx_output_set_flags(ctx, 1 << 3)  # NFT_CTX_OUTPUT_HANDLE
            rc = lib.nft_run_cmd_from_buffer(ctx, script.encode())
            result["output"] = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
            if rc != 0:
                result["error"] = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode().strip()
        finally:
            lib.nft_ctx_free(ctx)

    # the thread ends with it: the namespace it entered goes with the thread
    thread = threading.Thread(target=work, name=f"nft-{namespace}", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise ResourceUnavailableError(f"nft in namespace {namespace} failed: {result['error']}")
    return result.get("output", "")
