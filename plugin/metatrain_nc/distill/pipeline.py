"""The steps of ``mtt-nc distill`` as units of the resumable store
(:mod:`metatrain_nc.unit_store`): :class:`Steps` makes each unit (reading the records
of the steps before it) and the report of all of them (:meth:`Steps.collect`).
"""

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional

from .settings import SIZES, DistillSettings

#: the steps of a distillation, in order: units of the resumable store
STEPS = ("teacher", "data", "students", "accuracy", "cost", "strides", "timing")


class Steps:
    """The units of a distillation (:data:`STEPS`), each reading the records of the
    steps before it from the store, and the report made of all of them."""

    def __init__(self, store, protocol: Dict[str, Any], settings: DistillSettings):
        from . import stages
        from .jobs import Runner

        self.store, self.protocol, self.settings = store, protocol, settings
        self.out = store.path
        self.runner = Runner(self.out, settings.jobs, Path.cwd())
        self.stages = stages
        template = protocol["student_options"]
        self.template = Path(template) if template else stages.STUDENT_OPTIONS

    def record(self, name: str) -> Dict[str, Any]:
        return self.store.load(name)

    @property
    def teacher(self) -> str:
        return self.record("teacher")["model"]

    def paths(self) -> Dict[str, str]:
        out = self.out / "students"
        return {s: str(out / s / "student.pt") for s in self.settings.sizes}

    def unit(self, name: str):
        """The unit of step ``name``: its record, with the commands it ran and the
        CPU time it took (this process and its children)."""

        def work() -> Dict[str, Any]:
            import resource

            def cpu() -> float:
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                return time.process_time() + children.ru_utime + children.ru_stime

            first, began = len(self.runner.done), cpu()
            record = getattr(self, f"step_{name}")()
            jobs = self.runner.done[first:]
            record["commands"] = [job.as_dict() for job in jobs]
            record["unit_cpu_s"] = cpu() - began
            return record

        return work

    def step_teacher(self) -> Dict[str, Any]:
        spec = self.protocol["teacher"]
        print(f"[distill] 1/4 teacher {spec}; data", flush=True)
        return {"model": self.stages.prepare_teacher(spec, self.out, self.runner)}

    def step_data(self) -> Dict[str, Any]:
        given = self.protocol["data"]
        structures = self.protocol["structures"]
        return self.stages.make_data(
            self.teacher,
            Path(structures) if structures else None,
            self.settings,
            self.out,
            Path(given) if given else None,
        )

    def step_students(self) -> Dict[str, Any]:
        print(f"[distill] 2/4 training students {list(self.settings.sizes)}")
        jobs = self.stages.train_students(
            self.settings, self.record("data"), self.out, self.runner, self.template
        )
        return {"trained": {size: job.as_dict() for size, job in jobs.items()}}

    def step_accuracy(self) -> Dict[str, Any]:
        print("[distill] 3/4 accuracy, cost and stride scans", flush=True)
        data = self.record("data")
        return self.stages.accuracy(self.settings, data, self.out, self.runner)

    def step_cost(self) -> Dict[str, Any]:
        from .measure import force_call_ms

        repeats = self.settings.cost_repeats
        costs = force_call_ms(self.teacher, self.paths(), self.out, repeats)
        return {"costs": {name: cost.as_dict() for name, cost in costs.items()}}

    def step_strides(self) -> Dict[str, Any]:
        summaries = self.stages.scan_strides(
            self.teacher, self.settings, self.out, self.runner
        )
        return {"summaries": summaries}

    def students(self, records) -> Dict[str, Dict[str, Any]]:
        """Every student: its model, size, training cost, errors, cost and stride."""
        costs = records["cost"]["costs"]
        paths, students = self.paths(), {}
        for size in self.settings.sizes:
            run_ = records["strides"]["summaries"][size]
            completed = run_["status"] == "completed"
            trained = records["students"]["trained"][size]
            students[size] = {
                "model": paths[size],
                "hypers": SIZES[size],
                "parameters": _parameters(Path(trained["log"])),
                "train_cpu_s": trained["cpu_s"],
                **records["accuracy"][size],
                "ms_per_call": costs[size]["ms_per_call"],
                "cost": costs[size],
                "stride": run_["settings"]["stride"] if completed else None,
                "stride_scan": run_.get("stride_scan"),
            }
        return students

    def step_timing(self) -> Dict[str, Any]:
        from .measure import md_step_ms
        from .report import choose

        records = {name: self.record(name) for name in STEPS[:-1]}
        students = self.students(records)
        chosen = choose(students, records["cost"]["costs"]["teacher"]["ms_per_call"])
        if chosen is None:
            return {"chosen": None, "timing": None}
        print(f"[distill] 4/4 timing the teacher and the pair ({chosen})")
        stride = students[chosen]["stride"]
        timing = md_step_ms(
            self.teacher, self.paths()[chosen], stride, self.settings, self.out
        )
        return {"chosen": chosen, "timing": timing}

    def collect(self, records, failed) -> Dict[str, Any]:
        """The report (``report.json``'s content) of the finished steps."""
        from .report import choose, md_numbers

        students = self.students(records)
        teacher_cost = records["cost"]["costs"]["teacher"]
        choose(students, teacher_cost["ms_per_call"])  # sets predicted_speedup
        done = [records[name] for name in STEPS]
        return {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "quick": self.protocol["quick"],
            "jobs": self.settings.jobs,
            "settings": asdict(self.settings),
            "teacher": {
                "model": self.teacher,
                "source": self.protocol["teacher"],
                "ms_per_call": teacher_cost["ms_per_call"],
                "cost": teacher_cost,
            },
            "data": records["data"],
            "students": students,
            "chosen": records["timing"]["chosen"],
            "nve": {
                name: md_numbers(summary)
                for name, summary in records["strides"]["summaries"].items()
            },
            "timing": records["timing"]["timing"],
            "commands": [job for record in done for job in record["commands"]],
            "cpu_time_min": sum(r["unit_cpu_s"] for r in done) / 60,
            "wall_time_min": sum(r["unit_wall_time_s"] for r in done) / 60,
        }


def publish(report: Dict[str, Any], out: Path) -> None:
    from .report import write_report

    report["markdown"] = write_report(report, out)


def _parameters(log: Path) -> Optional[int]:
    import re

    match = re.search(r"actual number: (\d+)", log.read_text(errors="replace"))
    return int(match.group(1)) if match else None
