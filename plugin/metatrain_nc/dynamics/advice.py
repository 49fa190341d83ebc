"""The way out that each warning of :mod:`.verdicts` gives: plain advice, by the
force mode of the run (``"conservative"``, ``"direct"`` or ``"mts"``)."""


def equipartition_advice(forces: str, ensemble: str) -> str:
    """What to do when species temperatures differ beyond their error."""
    if forces == "direct":
        advice = (
            "direct forces are not the gradient of an energy, and the thermostat "
            "hides their heating but not its uneven share between species: run with "
            "--forces mts (or conservative)"
        )
        if ensemble == "langevin":
            advice += "; a shorter --tau narrows the split but slows the dynamics"
        else:
            advice += "; a global thermostat (svr) cannot restore equipartition"
        return advice
    if forces == "mts":
        return (
            "the outer step may be too long for this model (try --stride auto or a "
            "shorter --timestep), or the run too short to equilibrate (run longer)"
        )
    return (
        "conservative forces share energy evenly at equilibrium: the run is too "
        "short to equilibrate (run longer), or the time step too long"
    )


def target_advice(forces: str) -> str:
    """What to do when the thermostat misses its target."""
    if forces == "direct":
        return (
            "direct forces heat the system faster than the thermostat takes the heat "
            "out: run with --forces mts (or conservative), or use a shorter --tau"
        )
    if forces == "mts":
        return (
            "the outer step may be too long for this model (try --stride auto or a "
            "shorter --timestep), or the run too short to equilibrate"
        )
    return "the time step may be too long, or the run too short to equilibrate"


def drift_advice(forces: str) -> str:
    """What to do when the conserved energy of an NVE run drifts."""
    if forces == "direct":
        return "direct forces do not conserve energy: use --forces mts"
    if forces == "mts":
        return (
            "the outer step is too long for this model: try --stride auto or a "
            "shorter --timestep"
        )
    return (
        "the time step is too long for this model: try a shorter --timestep or a "
        "larger --stride"
    )


def stationarity_advice() -> str:
    """What to do when the species temperatures still change over the analysed part."""
    return (
        "the run has not reached its steady state, and means over the analysed part "
        "mix before and after: run longer and read the last part (`mtt-nc read RUN "
        "--from PS`; `--windows PS` shows when it settles)"
    )
