"""Which kernels a fit runs on: numpy's, or compiled ones (the `fast` extra, numba).

Both paths give bit-identical results (kernels_jit.py says how), so the choice only
moves time. ``YAMLNET_KERNELS`` in the environment picks it:

- ``numpy``: numpy only; numba is never imported.
- ``compiled``: the compiled kernels for every fit and forward pass (a UserError when
  numba is not installed).
- unset (or ``auto``): compiled for a fit whose work, its minibatch steps times the
  multiply-adds of one step's forward pass, reaches AUTO_FROM, when numba is
  installed; numpy otherwise (loading the kernels costs about 0.3 s per process,
  which a small fit would not earn back).

Compiled kernels are cached on disk by numba, next to this package or, where that is
read-only, in the user's cache folder (``NUMBA_CACHE_DIR`` overrides both). ``notice``,
when set (the command line sets it), receives one message when they are about to be
compiled, which happens once per install.
"""

import importlib.util
import os

from runner.errors import UserError

ENV = "YAMLNET_KERNELS"
MODES = ("numpy", "compiled", "auto")
AUTO_FROM = 5e10  # multiply-adds of a fit from which the compiled kernels surely pay
notice = None  # notice(message) before the kernels are first compiled


def mode():
    """The mode asked for by YAMLNET_KERNELS: 'numpy', 'compiled' or 'auto'."""
    value = os.environ.get(ENV, "").strip().lower() or "auto"
    if value not in MODES:
        raise UserError(f"environment variable {ENV}={os.environ[ENV]!r}: expected one of "
                        f"{', '.join(MODES)} (unset means auto)")
    return value


def available():
    """Whether numba is installed (without importing it)."""
    return importlib.util.find_spec("numba") is not None


def missing_message():
    return ("the compiled kernels need numba, which is not installed: "
            "pip install 'yamlnet[fast]', or use the numpy kernels (--kernels numpy)")


def wanted(work=None):
    """Whether to run compiled kernels: for a fit of `work` multiply-adds, or for a
    forward pass when work is None (compiled only when asked for)."""
    chosen = mode()
    if chosen == "compiled":
        if not available():
            raise UserError(f"{ENV}=compiled: {missing_message()}")
        return True
    if chosen == "numpy" or work is None:
        return False
    return work >= AUTO_FROM and available()


def fit_work(net, rows, batch, epochs):
    """Multiply-adds of a fit: its minibatch steps times one step's forward pass."""
    steps = epochs * -(-rows // max(1, batch))
    return steps * batch * sum(a * b for a, b in zip(net.sizes, net.sizes[1:]))


_LOADED = []


def ops():
    """The kernels_ops module, imported (and compiled, the first time) on first use."""
    if not _LOADED:
        try:
            from runner.engine import kernels_jit
        except RuntimeError as e:  # numba finds no writable folder for its cache
            raise UserError(f"the compiled kernels cannot be cached ({e}); set NUMBA_CACHE_DIR "
                            f"to a writable folder, or use the numpy kernels ({ENV}=numpy)"
                            ) from None

        cached = _cached(kernels_jit)
        if notice is not None and not cached:
            notice("compiling yamlnet's kernels (once; later runs load them from the cache)")
        from runner.engine import kernels_ops

        if not cached:
            kernels_ops.warm()
        _LOADED.append(kernels_ops)
    return _LOADED[0]


def _cached(module):
    """Whether numba's disk cache holds compiled code for the kernels (a guess from one
    representative kernel's index; True when numba's internals are not as expected)."""
    try:
        return bool(module.bias_relu._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 - an internal API of numba's; don't fail on it
        return True


def initial():
    """The kernels a new network or optimizer starts on: True (compiled) or False (numpy)
    when YAMLNET_KERNELS pins them, None in auto mode (numpy until a fit decides)."""
    chosen = mode()
    return None if chosen == "auto" else wanted()


def engage(net, optimizer, rows, batch, epochs):
    """Settle the kernels of a fit (rows, batch size, epochs) on `net` and `optimizer`,
    unless already settled (by YAMLNET_KERNELS, an earlier fit or the caller)."""
    engines = [e for e in (net, optimizer) if getattr(e, "kernels", False) is None]
    if not engines:
        return
    on = wanted(fit_work(net, rows, batch, epochs))
    if on and mode() == "auto":
        try:
            ops()
        except UserError:  # not cacheable here: numpy, which gives the same bits
            on = False
    for engine in engines:
        engine.use_kernels(on)
