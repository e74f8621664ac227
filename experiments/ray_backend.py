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


def ray_executor(address: str | None, workers: int, gpus_per_run: float | None = None):
    """An executor (see :mod:`shopgym.experiments.compare`) that runs each task as a Ray
    task, at most ``workers`` at a time (0: as many as Ray schedules).

    A task asks Ray for as many CPUs as its torch threads and, on a CUDA device,
    ``gpus_per_run`` GPUs (default 0.25: four runs share a GPU). Ray hides the GPUs
    from a task that asks for none, so without this a CUDA run would find no GPU."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--backend ray needs Ray: pip install 'shopgym[ray]'") from exc
    from shopgym.experiments.compare import Task, _task_files

    def execute(tasks: list[Task], device: str, threads: int) -> Iterator[tuple[str, dict[str, str]]]:
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False)
        gpus = (0.25 if gpus_per_run is None else gpus_per_run) if device.startswith("cuda") else 0
        try:
            run = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(_task_files)
            queue, running, failure = list(tasks), {}, None
            while queue or running:
                while queue and failure is None and (workers == 0 or len(running) < workers):
                    task = queue.pop(0)
                    running[run.remote(task, device, threads)] = task.name
                if not running:
                    break
                done, _ = ray.wait(list(running), num_returns=1)
                for reference in done:
                    name = running.pop(reference)
                    try:
                        files = ray.get(reference)
                    except ray.exceptions.RayTaskError as exc:
                        # No new task starts; those running finish and are kept.
                        failure = failure or exc.as_instanceof_cause()
                        continue
                    yield name, files
            if failure is not None:
                raise failure from None
        finally:
            if started_here:
                ray.shutdown()

    return execute
