"""Runs of ``shopgym compare`` as Ray tasks, for grids that outgrow one machine.

``shopgym compare FILE --backend ray`` starts a local Ray instance;
``--ray-address ADDRESS`` (as ``ray.init`` takes it: ``auto`` on a cluster node,
``ray://head:10001`` from outside) joins a cluster. Every node needs shopgym installed
(``pip install shopgym[ray]``, the same version: each run's config.json records the code,
and a rerun refuses runs of other code) and the Worlds the presets use: the shipped World
comes with the package; another World folder must be at the same path on every node.
The driver writes every file: tasks return their runs' files, so nodes need no
shared disk for results.
"""

from __future__ import annotations

from collections.abc import Iterator

from shopgym.simulator.errors import ConfigError


def ray_executor(address: str | None, workers: int):
    """An executor (see :mod:`shopgym.experiments.compare`) that runs each task as a Ray
    task of one CPU, at most ``workers`` at a time (0: as many as Ray schedules)."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--backend ray needs Ray: pip install 'shopgym[ray]'") from exc
    from shopgym.experiments.compare import Task, _task_files

    def execute(tasks: list[Task], device: str, threads: int) -> Iterator[tuple[str, dict[str, str]]]:
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False)
        try:
            run = ray.remote(num_cpus=1, max_retries=0)(_task_files)
            queue, running = list(tasks), {}
            while queue or running:
                while queue and (workers == 0 or len(running) < workers):
                    task = queue.pop(0)
                    running[run.remote(task, device, threads)] = task.name
                done, _ = ray.wait(list(running), num_returns=1)
                for reference in done:
                    name = running.pop(reference)
                    try:
                        files = ray.get(reference)
                    except ray.exceptions.RayTaskError as exc:
                        raise exc.as_instanceof_cause() from None
                    yield name, files
        finally:
            if started_here:
                ray.shutdown()

    return execute
