"""libvirt's errors as the core's error classes, libvirt's message kept.

``translate(exc, context)`` picks the class from libvirt's error code and domain:

- the connection is gone or cannot be made (RPC/remote errors, timeouts, an
  unresponsive agent, storage that cannot be reached) -> ``ResourceUnavailableError`` (534)
- bad XML, arguments, URIs or credentials -> ``InvalidParameterError`` (431); an
  operation the domain's state does not allow (``domain is not running``) too, as
  CloudStack answers a VM in the wrong state
- something this libvirt/QEMU does not do -> ``UnsupportedError`` (432)
- a name or device already taken -> ``ResourceInUseError`` (536)
- anything else -> ``InternalError`` (530)
"""

from __future__ import annotations

from core.errors import (
    InternalError,
    InvalidParameterError,
    ResourceInUseError,
    ResourceUnavailableError,
    StratoError,
    UnsupportedError,
)

try:
    import libvirt
except ImportError as exc:  # say how to get it: the entry point's load error is all the admin sees
    raise ImportError("the kvm plugin needs libvirt-python: pip install 'strato[kvm]' "
                      "(building it needs libvirt-dev and pkg-config)") from exc

# libvirt prints every error to stderr before raising it; each one is raised as a
# libvirtError and translated by the caller, so the printing is only noise.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_UNAVAILABLE_CODES = {
    libvirt.VIR_ERR_INVALID_CONN,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_OPERATION_TIMEOUT,
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE,
}
# VIR_ERR_SYSTEM_ERROR means "a system call failed": a refused socket when it comes from
# the RPC layer, but also a missing disk or bridge. The error domain tells them apart.
_UNAVAILABLE_DOMAINS = {libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_STORAGE}
_INVALID_CODES = {
    libvirt.VIR_ERR_INVALID_ARG,
    libvirt.VIR_ERR_XML_ERROR,
    libvirt.VIR_ERR_XML_DETAIL,
    libvirt.VIR_ERR_XML_INVALID_SCHEMA,
    libvirt.VIR_ERR_INVALID_MAC,
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
    libvirt.VIR_ERR_OPERATION_INVALID,
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_AUTH_FAILED,
    libvirt.VIR_ERR_AUTH_CANCELLED,
}
_UNSUPPORTED_CODES = {
    libvirt.VIR_ERR_NO_SUPPORT,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
}
_IN_USE_CODES = {libvirt.VIR_ERR_DOM_EXIST, libvirt.VIR_ERR_RESOURCE_BUSY}


def error_class(exc: libvirt.libvirtError) -> type[StratoError]:
    code, domain = exc.get_error_code(), exc.get_error_domain()
    message = exc.get_error_message() or ""
    if code in _UNAVAILABLE_CODES or (code == libvirt.VIR_ERR_SYSTEM_ERROR and domain in _UNAVAILABLE_DOMAINS):
        return ResourceUnavailableError
    if code in _INVALID_CODES:
        return InvalidParameterError
    if code in _UNSUPPORTED_CODES:
        return UnsupportedError
    # defineXML reports a name taken by another uuid as a plain "operation failed"
    if code in _IN_USE_CODES or (code == libvirt.VIR_ERR_OPERATION_FAILED and "already exists" in message):
        return ResourceInUseError
    return InternalError


def translate(exc: libvirt.libvirtError, context: str) -> StratoError:
    """The Strato error for ``exc``; its message is ``"<context>: <libvirt's message>"``.
    Raise it ``from exc`` so the libvirt error stays attached."""
    return error_class(exc)(f"{context}: {exc.get_error_message() or exc}")


def is_no_domain(exc: libvirt.libvirtError) -> bool:
    """The domain does not exist (any more)."""
    return exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN


def is_not_running(exc: libvirt.libvirtError) -> bool:
    """The operation needs a running domain and this one is off."""
    return exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID
