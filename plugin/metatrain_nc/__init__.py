"""metatrain-nc: non-conservative (direct) force models for metatrain.

Kept import-light on purpose: the start-up hook and ``mtt-nc --help`` import this
package, so nothing heavy (torch, metatrain) is imported here.
"""

__version__ = "0.1.0.dev0"

#: metatrain versions this release is tested with, as ``(lowest, first unsupported)``.
SUPPORTED_METATRAIN = ("2026.4.1", "2026.5")
