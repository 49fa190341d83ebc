"""Shared machinery of the ``pet_nc`` and ``pet_m`` architectures.

- :mod:`.routing`: turns the dataset section a stock-``pet`` user writes (``energy``
  with ``forces``/``stress``) into the targets of the direct heads;
- :mod:`.backend`: PET's backend with the direct force head (edge or per-atom);
- :mod:`.model`: :class:`DirectPET`, PET with direct force/stress heads;
- :mod:`.trainer`: :class:`DirectTrainer`, PET's trainer fed with routed labels.
"""
