"""Names shared by every tool: model outputs, force heads and force modes.

Model outputs are metatomic's standard names; force *heads* are what a user chooses
between (``conservative``: ``-dE/dr`` of the ``energy`` output; ``direct``: a model's
own force prediction); force *modes* are how dynamics uses them (``mts`` = inner
direct steps with an outer conservative correction).
"""

#: the energy output (eV)
ENERGY = "energy"
#: metatomic's standard output of direct forces (eV/A, per atom)
DIRECT_FORCE = "non_conservative_force"
#: metatomic's standard output of a direct stress (eV/A^3, per system)
DIRECT_STRESS = "non_conservative_stress"

#: force head: ``-dE/dr``
CONSERVATIVE = "conservative"
#: force head: the model's own force prediction
DIRECT = "direct"
#: every force head, in evaluation order
HEADS = (CONSERVATIVE, DIRECT)

#: force modes of the dynamics, the relaxation check and the command line
FORCE_MODES = (CONSERVATIVE, DIRECT, "mts")


def head_of_output(output: str) -> str:
    """The head named by an antisymmetry ``output`` (``"non_conservative_force"`` or
    ``"conservative"``), or by a head name itself."""
    if output in (DIRECT_FORCE, DIRECT):
        return DIRECT
    if output == CONSERVATIVE:
        return CONSERVATIVE
    raise ValueError(f"unknown force output '{output}'")
