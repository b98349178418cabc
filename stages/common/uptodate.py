"""doit up-to-date checks whose settings are only known when the task is checked."""
import json

from doit.tools import config_changed

from stages.common.doitcompat import config_digest

SAVER_KEY = "_config_changed"  # the value name doit's own config_changed stores its digest under


class settings_changed(object):
    """config_changed over a dict computed at check time (e.g. engine settings + device
    fingerprint), through doit's uptodate protocol: configure_task + __call__(task, values).
    `doit info -s TASK` prints the current values, so it says why a task reruns."""

    def __init__(self, name, make_config):
        self.name, self.make_config = name, make_config
        self.config, self.config_digest = {}, None

    def configure_task(self, task):
        task.value_savers.append(lambda: {SAVER_KEY: self.config_digest})

    def __call__(self, task, values):
        """True when the settings are unchanged since the last successful run."""
        self.config = self.make_config()
        self.config_digest = config_digest(config_changed(self.config))
        last = values.get(SAVER_KEY)
        return last is not None and last == self.config_digest

    def __repr__(self):
        return "%s changed (now %s)" % (self.name, json.dumps(self.config, sort_keys=True))
