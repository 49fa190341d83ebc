"""The worker processes of a reference build: sampling and labelling tasks.

:class:`Runner` runs the tasks in this process (one worker) or in a pool of fresh
(``spawn``) processes with ``cores / workers`` torch threads each and the caller's
working folder on their import path, so that a ``module:callable`` reference found in
the folder the user runs in is found by every worker. Progress reaches the parent's
bars through a queue; every result is committed by the parent (one writer).
"""

import concurrent.futures
import multiprocessing
import os
import queue as queue_module
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .plan import ReferencePlan

#: frames per labelling task
LABEL_BATCH = 2

#: models of this process by spec (a build running in-process puts its own here)
MODELS: Dict[str, Any] = {}


def _init_worker(cwd: str, threads: int) -> None:
    import torch

    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    torch.set_num_threads(max(1, threads))


def _worker_model(spec: str, what: str):
    if spec not in MODELS:
        from .build import load_reference

        MODELS[spec] = load_reference(spec, what)
    return MODELS[spec]


def _sample_task(plan_json, index, workdir, start, events) -> Tuple[int, float]:
    from .sampling import sample_trajectory, trajectory_log

    plan = ReferencePlan.from_json(plan_json)
    sampler = _worker_model(plan.sampler or plan.reference, "sampler")
    before = trajectory_log(Path(workdir), index).open().state.get("step", 0)
    began = time.perf_counter()
    sample_trajectory(
        plan,
        index,
        Path(workdir),
        start,
        sampler,
        progress=(lambda n: events.put(n)) if events is not None else None,
    )
    after = trajectory_log(Path(workdir), index).open().state.get("step", 0)
    return int(after) - int(before), time.perf_counter() - began


def _label_task(plan_json, items, provenance) -> Tuple[list, float]:
    from .labelling import label_frame

    plan = ReferencePlan.from_json(plan_json)
    model = _worker_model(plan.reference, "reference")
    began = time.perf_counter()
    results = []
    for sampled, frame in items:
        seed = plan.trajectories[int(sampled.info["trajectory"])].seed
        results.append(
            label_frame(model, sampled, frame, seed, plan.max_strain, provenance)
        )
    return results, time.perf_counter() - began


class Runner:
    """Runs tasks in this process (one worker) or in a spawn pool."""

    def __init__(self, plan: ReferencePlan, out: Path, workers: int, progress: bool):
        self.plan = plan
        self.out = out
        self.workers = int(workers)
        self.progress = progress
        self.pool: Optional[concurrent.futures.ProcessPoolExecutor] = None
        self.manager = None
        if self.workers > 1:
            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self.pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getcwd(), threads),
            )

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.manager is not None:
            self.manager.shutdown()

    def _bar(self, total: int, initial: int, desc: str):
        from tqdm import tqdm

        return tqdm(
            total=total,
            initial=initial,
            unit="frame",
            desc=desc,
            disable=not self.progress,
            dynamic_ncols=True,
        )

    def sample(self, frames: list) -> Optional[float]:
        from .sampling import trajectory_log

        plan = self.plan
        counts = {
            t.index: trajectory_log(self.out, t.index).open().n_frames
            for t in plan.trajectories
        }
        todo = [i for i, n in counts.items() if n < plan.frames_per_trajectory]
        done = sum(counts.values())
        if not todo:
            return None
        bar = self._bar(plan.n_frames, done, "sample")
        plan_json = plan.to_json()
        steps, seconds = 0, 0.0
        try:
            if self.pool is None:
                for i in todo:
                    n, s = _sample_task(
                        plan_json,
                        i,
                        str(self.out),
                        frames[plan.trajectories[i].start_frame],
                        _Direct(bar),
                    )
                    steps, seconds = steps + n, seconds + s
            else:
                self.manager = multiprocessing.get_context("spawn").Manager()
                events = self.manager.Queue()
                futures = [
                    self.pool.submit(
                        _sample_task,
                        plan_json,
                        i,
                        str(self.out),
                        frames[plan.trajectories[i].start_frame],
                        events,
                    )
                    for i in todo
                ]
                pending = set(futures)
                while pending:
                    finished, pending = concurrent.futures.wait(
                        pending, timeout=0.5, return_when="FIRST_COMPLETED"
                    )
                    _drain(events, bar)
                    for future in finished:
                        n, s = future.result()  # a worker's error stops the build
                        steps, seconds = steps + n, seconds + s
                _drain(events, bar)
        finally:
            bar.close()
        return seconds / steps if steps else None

    def label(self, version: str) -> Tuple[Optional[float], List[str]]:
        from .labelling import LabelFailure
        from .provenance import frame_provenance
        from .sampling import trajectory_log
        from .store import FrameLog

        plan = self.plan
        provenance = frame_provenance(plan, version)
        log = FrameLog(self.out, "labelled").open()
        done = {tuple(k) for k in log.state.get("done", [])}
        items = []
        for t in plan.trajectories:
            for frame, atoms in enumerate(
                trajectory_log(self.out, t.index).open().read()
            ):
                if (t.index, frame) not in done:
                    items.append((atoms, frame))
        if not items:
            return None, []
        batches = [
            items[i : i + LABEL_BATCH] for i in range(0, len(items), LABEL_BATCH)
        ]
        bar = self._bar(plan.n_frames, len(done), "label")
        plan_json = plan.to_json()
        failures: List[str] = []
        count, seconds = 0, 0.0

        def record(results, elapsed):
            nonlocal count, seconds
            good = [r for r in results if not isinstance(r, LabelFailure)]
            for r in results:
                if isinstance(r, LabelFailure):
                    failures.append(r.message)
                    bar.write(f"label failed: {r.message}")
            keys = [[int(a.info["trajectory"]), int(a.info["frame"])] for a in good]
            log.append(good, done=log.state.get("done", []) + keys)
            count += len(results)
            seconds += elapsed
            bar.update(len(results))

        try:
            if self.pool is None:
                for batch in batches:
                    record(*_label_task(plan_json, batch, provenance))
            else:
                futures = [
                    self.pool.submit(_label_task, plan_json, batch, provenance)
                    for batch in batches
                ]
                for future in concurrent.futures.as_completed(futures):
                    record(*future.result())
        finally:
            bar.close()
        return (seconds / count if count else None), failures


class _Direct:
    """The progress queue of the in-process runner: straight to the bar."""

    def __init__(self, bar):
        self.bar = bar

    def put(self, n: int) -> None:
        self.bar.update(n)


def _drain(events, bar) -> None:
    while True:
        try:
            bar.update(events.get_nowait())
        except queue_module.Empty:
            return
