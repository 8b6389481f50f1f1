"""actvt-installer: sets up a Linux server to stream metrics to the Actvt app."""

import os as _os

from installer.launcher import platform_libs as _platform_libs

__version__ = "1.1.0"

# In the zipapp, pick this machine's compiled libraries before anything imports cryptography.
_platform_libs.activate(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
