"""The error classes of Strato.

Each class knows the CloudStack ``errorcode`` (also the HTTP status) and
``cserrorcode`` it answers with; the API turns them into the error envelope in
exactly one place (``api.native.envelope``). Raise these from the core and from
plugins; anything else that escapes a command is reported as 530 without its
stack trace.
"""


class StratoError(Exception):
    """Base class. ``errorcode`` is CloudStack's ApiErrorCode, ``cserrorcode`` its CSExceptionErrorCode."""

    errorcode = 530
    cserrorcode = 4250

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class AuthenticationError(StratoError):
    """Bad, missing or expired credentials, signature or session (401)."""

    errorcode = 401
    cserrorcode = 4290


class MethodNotAllowed(StratoError):
    errorcode = 405
    cserrorcode = 9999


class RateLimitExceeded(StratoError):
    errorcode = 429
    cserrorcode = 4545


class InvalidParameterError(StratoError):
    """A parameter is missing, malformed or names nothing that exists (431)."""

    errorcode = 431
    cserrorcode = 4350


class UnsupportedError(StratoError):
    """Unknown command, or an operation this driver or setup cannot do (432)."""

    errorcode = 432
    cserrorcode = 4390


class InternalError(StratoError):
    errorcode = 530
    cserrorcode = 4250


class PermissionDenied(StratoError):
    """The caller may not call this command or act on this resource (531)."""

    errorcode = 531
    cserrorcode = 4365


class ResourceLimitError(StratoError):
    errorcode = 532
    cserrorcode = 4370


class InsufficientCapacityError(StratoError):
    """No host or storage pool can take the request (533)."""

    errorcode = 533
    cserrorcode = 4325


class ResourceUnavailableError(StratoError):
    """A host, pool or service needed for the operation is down (534)."""

    errorcode = 534
    cserrorcode = 4380


class ResourceAllocationError(StratoError):
    errorcode = 535
    cserrorcode = 4370


class ResourceInUseError(StratoError):
    errorcode = 536
    cserrorcode = 4375


class NetworkRuleConflictError(StratoError):
    errorcode = 537
    cserrorcode = 4360


class ConcurrentOperationError(StratoError):
    """Someone else changed the resource first (state/version check failed)."""

    errorcode = 530
    cserrorcode = 4300


class ConfigurationError(StratoError):
    """Start-up cannot proceed: a setting or a configured plugin is wrong."""

    errorcode = 530
    cserrorcode = 4250
