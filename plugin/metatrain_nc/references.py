"""Real reference calculators that install with their parameters from the package
index (``pip install "metatrain-nc[reference]"``), as ``module:callable`` factories
for every tool: ``mtt-nc reference metatrain_nc.references:chgnet ...``.

Each factory returns an ASE calculator running on the CPU in float32/float64 as the
package does, with a ``reference_method`` attribute that ``mtt-nc reference`` writes
into every frame. Nothing is downloaded: the parameters are inside the wheels.
"""


def chgnet():
    """CHGNet 0.3.0 (the universal potential shipped in the ``chgnet`` wheel), on the
    CPU. Energy (eV), forces (eV/A) and stress (eV/A^3, ASE's sign) of periodic
    structures; non-periodic ones are refused by CHGNet itself."""
    from importlib.metadata import version

    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    model = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
    calculator = CHGNetCalculator(model=model, use_device="cpu")
    calculator.reference_method = (
        "CHGNet 0.3.0 universal potential (trained on Materials Project MPtrj, "
        f"PBE/PBE+U), chgnet {version('chgnet')}"
    )
    return calculator
