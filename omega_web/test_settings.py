"""Settings for the test process: the normal settings, except that a developer's .env is never read (it could
point at a real database). Tests set what they need themselves."""

import os

os.environ["OMEGA_IGNORE_DOTENV"] = "1"

from omega_web.settings import *  # noqa: F403
