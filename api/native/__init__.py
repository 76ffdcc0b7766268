"""The CloudStack-compatible native API at /client/api.

``dispatch`` runs the request pipeline; ``auth``, ``signing`` and ``sessions``
establish the caller; ``table`` finds the command; ``envelope`` writes every
response, errors included; ``request`` reads the parameters.
"""
