"""The model worker: one process per endpoint instance speaking the SageMaker container contract.

It loads user inference code (or framework defaults) once, then serves ``/ping`` and
``/invocations`` from a raw ASGI app on uvicorn, over TCP or a Unix domain socket.
"""
