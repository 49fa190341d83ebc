"""``mtt-nc compare --protocol paper``: the paper's thermostat (Table 2) and
relaxation (Table 7) protocols, resumable, with error bars and paper numbers
(settings: :meth:`~metatrain_nc.compare.settings.CompareSettings.paper`).

- :mod:`.structures`: the relaxation starts (gas-phase molecules, bulk frames);
- :mod:`.protocol`: its units (:mod:`..runs`: NVT runs, sets of relaxations) in the
  resumable store (:mod:`..store`);
- :mod:`.tables`: Table 2 and Table 7 rows, resolved and unresolved marks, the
  paper's numbers;
- :mod:`.report`: the sections of its report (:mod:`..report`).
"""
