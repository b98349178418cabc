"""What the engine build says while it runs: the TensorRT logger, the progress monitor and the
heartbeat (with an estimate of the time left from the previous build on this device).

The logger must never raise. TensorRT calls ILogger.log from C++: on 8.0.1 and 8.2.1 the
trampoline (python/src/infer/pyCore.cpp:372 at 8.0.1, :396 at 8.2.1) is noexcept without a
try/catch, so a Python exception there (a UnicodeEncodeError from print under a C locale, a
KeyboardInterrupt) calls std::terminate and aborts the process; from 8.4.3 (pyCore.cpp:376) the
exception is caught, printed and lost. So log() catches everything. Ctrl-C that lands inside
log() is kept: with a progress monitor (IProgressMonitor, first in 9.0, so 10.x/11.x) the next
step_complete() returns False and TensorRT cancels the build; without one (8.x) TensorRT offers
no way to cancel, so the process exits at once (exit code 130; the previous engine is untouched,
since every artifact is written to a temp file and renamed)."""
import os
import sys
import threading
import time


def say(text):
    """print() that survives a terminal that cannot encode the text (C locale)."""
    try:
        print(text)
    except UnicodeEncodeError:
        sys.stdout.write(text.encode("ascii", "replace").decode("ascii") + "\n")
    sys.stdout.flush()


class BuildState(object):
    """Shared by the logger and the progress monitor."""

    def __init__(self):
        self.interrupted = False
        self.monitored = False


def _interrupt(state):
    state.interrupted = True
    if not state.monitored:
        say("build_engine: interrupted; this TensorRT cannot cancel a build, so it stops now (the "
            "previous engine is untouched).")
        os._exit(130)


def make_logger(trt, lines, state):
    """A trt.ILogger that keeps every message (for build.log), prints warnings and errors, and
    cannot raise. Severity constants come from trt.Logger.Severity: on 8.0.1 they exist only on
    Logger (trt.ILogger.WARNING raises AttributeError there)."""
    sev = trt.Logger.Severity
    loud = (sev.INTERNAL_ERROR, sev.ERROR, sev.WARNING)

    class BuildLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            try:
                name = str(severity).split(".")[-1]
                lines.append("[%s] %s" % (name, msg))
                if severity in loud:
                    say("build_engine: TensorRT %s: %s" % (name.lower(), msg))
            except KeyboardInterrupt:
                _interrupt(state)
            except Exception:  # never let an exception reach TensorRT's C++ caller
                pass
    return BuildLogger()


def attach_progress(trt, config, state):
    """IProgressMonitor lines for each build phase where TensorRT has it (9.0+: 10.x, 11.x,
    TensorRT-RTX); returns whether one was attached."""
    if not (hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor")):
        return False

    class Progress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                say("build_engine: phase %s (%d steps)" % (phase_name, num_steps))

        def step_complete(self, phase_name, step):
            return not state.interrupted

        def phase_finish(self, phase_name):
            pass
    config.progress_monitor = Progress()
    state.monitored = True
    return True


class Heartbeat(object):
    """Prints 'still building' every `every` seconds (a Jetson Nano build takes minutes), with the
    time left estimated from the previous build of this device's engine when there is one."""

    def __init__(self, every=30.0, previous=None):
        self.every, self.previous = every, previous
        self.done, self.t0 = threading.Event(), time.time()
        self.thread = threading.Thread(target=self._run)
        self.thread.daemon = True

    def message(self, elapsed):
        text = "build_engine: still building, %d s elapsed" % elapsed
        if self.previous:
            left = self.previous - elapsed
            text += (", about %d s left (the previous build here took %d s)" % (left, self.previous)
                     if left > 0 else ", longer than the previous build here (%d s)"
                     % self.previous)
        return text + "..."

    def _run(self):
        while not self.done.wait(self.every):
            say(self.message(time.time() - self.t0))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
