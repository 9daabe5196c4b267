"""The pure core: rules and state machines that import only the standard library.

Everything here takes ``now`` as an argument and performs no I/O, so it is where most
tests live and where the simulator, the server and the agent share one behaviour.
"""
