"""doit up-to-date checks whose settings are only known when the task is checked."""
import json

from doit import tools

from stages.common.doitcompat import config_digest

SAVER_KEY = "_config_changed"  # the value name doit's own config_changed stores its digest under


class config_changed(tools.config_changed):
    """doit's config_changed, saying in `doit info TASK` what it watches (doit prints the object
    with str(), which is `<doit.tools.config_changed object at 0x...>` for doit's own)."""

    def __str__(self):
        names = sorted(self.config) if isinstance(self.config, dict) else [str(self.config)]
        return ("its settings (%s) changed since its last successful run, or it has not run "
                "yet" % ", ".join(names))

    __repr__ = __str__


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
        self.config_digest = config_digest(tools.config_changed(self.config))
        last = values.get(SAVER_KEY)
        return last is not None and last == self.config_digest

    def __repr__(self):
        return "%s changed (now %s)" % (self.name, json.dumps(self.config, sort_keys=True))


class Check(object):
    """A doit uptodate entry that says in words what it checks: `doit info TASK` prints the
    entry when it is false (doit formats it with str()), so the reason a task reruns, or why it
    can never be up to date here, reads as a sentence instead of `False` or `<lambda>`.
    reason: a sentence, or a function returning one (computed only when printed)."""

    def __init__(self, reason, test=None):
        self.reason, self.test = reason, test

    def __call__(self):
        return bool(self.test()) if self.test is not None else False

    def __str__(self):
        return self.reason() if callable(self.reason) else self.reason

    __repr__ = __str__
