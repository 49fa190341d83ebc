"""Real reference calculators that install with their parameters from the package
index (``pip install "metatrain-nc[reference]"``), as ``module:callable`` factories
for every tool: ``mtt-nc reference metatrain_nc.references:chgnet ...``,
``mtt-nc distill --teacher metatrain_nc.references:gfn2_xtb ...``.

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


def _xtb(method: str):
    from importlib.metadata import version

    from tblite.ase import TBLite

    # accuracy 0.01 (tblite's default is 1): tight SCF convergence, so that a label
    # does not depend on the previous call's wavefunction (1e-4 eV/A at the default)
    calculator = TBLite(method=method, verbosity=0, accuracy=0.01)
    calculator.reference_method = (
        f"{method} (semi-empirical tight-binding quantum chemistry, tblite "
        f"{version('tblite')}; no fitted weights)"
    )
    return calculator


def gfn2_xtb():
    """GFN2-xTB through ``tblite`` (a quantum-chemical method: no weights, nothing
    downloaded). Energy (eV) and forces (eV/A) of molecules and periodic
    structures; stress (eV/A^3) of periodic ones. ~10 ms per call on ethanol,
    ~11 s on 192-atom water (one thread)."""
    return _xtb("GFN2-xTB")


def gfn1_xtb():
    """GFN1-xTB through ``tblite``: as :func:`gfn2_xtb`, ~3x cheaper on water."""
    return _xtb("GFN1-xTB")
