"""``mtt-nc compare --protocol paper``: the paper's thermostat (Table 2) and
relaxation (Table 7) protocols, resumable, with error bars and paper numbers.

- :mod:`.settings`: what the protocol runs (:class:`PaperSettings`);
- :mod:`.structures`: the relaxation starts (gas-phase molecules, bulk frames);
- :mod:`.units`: one unit of work (an NVT run, a set of relaxations) each;
- :mod:`.runner`: the resumable folder and the loop over units;
- :mod:`.tables`: Table 2 and Table 7 rows, resolved and unresolved marks;
- :mod:`.paper_numbers`: the published numbers set beside ours;
- :mod:`.report`: ``report.md`` / ``report.html`` / ``report.json`` and figures.
"""

from .runner import run_paper_protocol
from .settings import PaperSettings

__all__ = ["PaperSettings", "run_paper_protocol"]
