"""doit up-to-date checks whose settings are only known when the task is checked."""
import json

from doit.tools import config_changed


class settings_changed(config_changed):
    """config_changed over a dict computed at check time (e.g. engine settings + device
    fingerprint). `doit info -s TASK` prints the current values, so it says why a task reruns."""

    def __init__(self, name, make_config):
        config_changed.__init__(self, {})
        self.name, self.make_config = name, make_config

    def _calc_digest(self):
        self.config = self.make_config()
        return config_changed._calc_digest(self)

    def __repr__(self):
        return "%s changed (now %s)" % (self.name, json.dumps(self.config, sort_keys=True))
