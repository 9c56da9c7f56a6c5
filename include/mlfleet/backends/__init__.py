"""Backends turn a batch of trials into work somewhere: local processes today.

The SageMaker and Kubernetes backends (provider operators over the same entrypoint) are the
next milestone; until they land, a spec that asks for them is refused up front.
"""

AVAILABLE_BACKENDS = ("local",)
