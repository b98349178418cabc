"""The one reader of settings files (pipeline.yaml and any config=PATH): bounded in size, time and
message length, and unambiguous. A settings file must be a regular file of UTF-8 text under
MAX_BYTES; YAML aliases (`*name`) are refused outright (an alias bomb expands a 3 KB file into
gigabytes), and so are nesting deeper than MAX_DEPTH, a key given twice in one mapping, and a
section given twice (each named with both line numbers). Every message that quotes a value goes
through `quote`, which caps it at QUOTE_CHARS."""
import os
import stat

import yaml

from stages.common.errors import ConfigError

MAX_BYTES = 1 << 20      # a pipeline file is a few KB; 1 MB is far beyond any real one
MAX_DEPTH = 16           # sections hold mappings of lists at most; 16 levels is generous
QUOTE_CHARS = 80         # how much of a bad value a message quotes


def quote(value, limit=QUOTE_CHARS):
    """repr(value), at most `limit` characters (then an ellipsis): what every message quoting a
    user's value prints, so a huge value never makes a huge line."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 60:
        return "a %d-digit number" % len(str(abs(value))) if abs(value) < 10 ** 4000 else \
            "a number of thousands of digits"
    if isinstance(value, (list, tuple, dict)) and len(value) > limit:
        value = type(value)(list(value)[:limit]) if not isinstance(value, dict) else "{...}"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, deep nesting and duplicate keys (PyYAML takes the last
    duplicate silently)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refusal("line %d uses the YAML alias *%s: aliases are not allowed in settings "
                           "files; write the value out" % (event.start_mark.line + 1,
                                                           quote(event.anchor, 40).strip("'")))
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refusal("line %d nests deeper than %d levels" % (
                    self.peek_event().start_mark.line + 1, MAX_DEPTH))
            return yaml.SafeLoader.compose_node(self, parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML names it
                break
            if first is not None:
                raise _Refusal("key %s is given twice (lines %d and %d): keep one" % (
                    quote(key, 40), first, line))
            seen[key] = line
        return yaml.SafeLoader.construct_mapping(self, node, deep=deep)


class _Refusal(Exception):
    """A reason the file is refused (becomes one ConfigError naming the file)."""


def _read_bytes(full, name):
    try:
        st = os.stat(full)
    except OSError:
        raise ConfigError("The pipeline file %s does not exist: create it or pass config=PATH."
                          % name)
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("The pipeline file %s is not a regular file (a folder, a FIFO or a "
                          "device): pass config=PATH of a YAML file." % name)
    if st.st_size > MAX_BYTES:
        raise ConfigError("The pipeline file %s is %d bytes, over the %d a settings file may have: "
                          "pass the right file with config=PATH." % (name, st.st_size, MAX_BYTES))
    with open(full, "rb") as f:
        return f.read(MAX_BYTES + 1)


def _text(data, name):
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data.count(b"\x00") * 4 > len(data):
        raise ConfigError("The pipeline file %s is not UTF-8 text (UTF-16 or binary): save it as "
                          "UTF-8." % name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError("The pipeline file %s is not UTF-8 text (byte %d): save it as UTF-8."
                          % (name, e.start))


def read_settings(full, name):
    """The parsed YAML of the settings file at `full` (`name` as the user gave it), or a
    ConfigError with one sentence that names the file (and the line where it can)."""
    text = _text(_read_bytes(full, name), name)
    loader = None
    try:
        loader = _Loader(text)
        return loader.get_single_data()
    except _Refusal as e:
        raise ConfigError("%s: %s." % (name, e))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = " at line %d" % (mark.line + 1) if mark else ""
        raise ConfigError("%s is not valid YAML%s: fix the syntax." % (name, where))
    except (ValueError, RecursionError, OverflowError) as e:  # e.g. a 5000-digit integer
        raise ConfigError("%s has a value YAML cannot hold (%s): fix it." % (
            name, quote(str(e).split("\n")[0], 60).strip("'\"")))
    finally:
        if loader is not None:
            loader.dispose()
