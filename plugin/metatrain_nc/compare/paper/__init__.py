"""``mtt-nc compare --protocol paper``: the paper's thermostat (Table 2) and
relaxation (Table 7) protocols, resumable, with error bars and paper numbers
(settings: :meth:`~metatrain_nc.compare.settings.CompareSettings.paper`).

- :mod:`.structures`: the relaxation starts (gas-phase molecules, bulk frames);
- :mod:`.units`: one unit of work (an NVT run, a set of relaxations) each;
- :mod:`.protocol`: the units in the resumable store (:mod:`..store`);
- :mod:`.tables`: Table 2 and Table 7 rows, resolved and unresolved marks;
- :mod:`.paper_numbers`: the published numbers set beside ours;
- :mod:`.report`: ``report.md`` / ``report.html`` / ``report.json`` and figures.
"""
