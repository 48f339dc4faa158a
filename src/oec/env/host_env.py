"""The environment every process oec starts on the host gets: nothing of the caller's.

oec runs next to API keys (OPENAI_API_KEY, ANTHROPIC_API_KEY, cloud
credentials) and under a user whose git and shell configuration it does not
control. A child process inherits the whole environment by default, so any
host-side process that a task's content can influence (git reading a
repository, `patch`, bubblewrap's launcher) would carry those secrets and
obey that configuration. `scrubbed_env` is built from nothing instead: a
fixed PATH, the C locale, a temp dir, and git told to read no system or
global configuration at all.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: git reads neither /etc/gitconfig nor ~/.gitconfig (nor $XDG_CONFIG_HOME/git/config), nor system attributes
GIT_ISOLATION = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
}


def scrubbed_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for a host-side child process: no inherited variable, secrets least of all."""
    env = {
        "PATH": SYSTEM_PATH,
        "LANG": "C",
        "LC_ALL": "C",
        "TMPDIR": tempfile.gettempdir(),
        "HOME": os.devnull,  # nothing may read a dotfile of the user running oec
        **GIT_ISOLATION,
    }
    env.update(extra or {})
    return env
