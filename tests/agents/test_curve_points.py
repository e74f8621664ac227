"""CurvePoints: when an agent that trains in steps calls the runner's checkpoint."""

from shopgym.agents.base import CurvePoints


def _taken(budget: int, steps: list[int], checkpoint_points: int | None = None, **options) -> list[int]:
    taken: list[int] = []

    def checkpoint(step: int) -> None:
        taken.append(step)

    if checkpoint_points is not None:
        checkpoint.points = checkpoint_points
    curve = CurvePoints(budget, checkpoint, **options)
    for step in steps:
        curve.update(step)
    curve.finish(steps[-1])
    return taken


def test_points_come_from_the_checkpoint_else_ten():
    steps = list(range(100, 1001, 100))
    assert _taken(1000, steps) == steps  # 10 points by default
    assert _taken(1000, steps, checkpoint_points=2) == [500, 1000]
    assert _taken(1000, steps, checkpoint_points=2, points=5) == [200, 400, 600, 800, 1000]


def test_the_last_point_is_at_the_end_and_never_taken_twice():
    # Steps that are no multiple of the spacing (533): the point at 1600 is taken once.
    assert _taken(1600, list(range(160, 1601, 160)), checkpoint_points=3) == [640, 1120, 1600]
    assert _taken(1000, [300, 700, 900], checkpoint_points=2) == [700, 900]  # 900: the end
    assert CurvePoints(100, None).checkpoint is None  # no runner: nothing to call


def test_progress_is_called_at_every_update_and_zero_points_take_none():
    taken, progress = [], []
    checkpoint = taken.append  # a bound method takes no attributes: wrap it

    def runner(steps: int) -> None:
        checkpoint(steps)

    runner.points, runner.progress = 0, progress.append
    curve = CurvePoints(300, runner)
    for steps in (100, 200, 300):
        curve.update(steps)
    curve.finish(300)
    assert progress == [100, 200, 300, 300] and taken == []
