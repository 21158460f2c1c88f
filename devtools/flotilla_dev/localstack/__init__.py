"""The local stack: every service, the AWS emulator, Postgres and Redis on one machine (``flotilla up``).

- ``supervisor``: runs child processes with prefixed output, start-up checks and a clean stop;
- ``backends``: the emulator, Postgres and Redis as local processes, and their readiness probes;
- ``stack``: what to run, worked out from each service's settings, resources and declared workers;
- ``up``: the start-up order and the run loop; ``banner``: what is printed when it is ready;
- ``cli``: the ``flotilla up`` command (``make run``). See ``docs/local-stack.md``.
"""
