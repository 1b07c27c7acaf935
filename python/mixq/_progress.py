"""Progress for long calls: a tqdm bar per stage when tqdm is installed, else the library's own
bars on stderr (as the CLI draws them); a callable gets every update instead."""


def make_sink(progress):
    """(callable or None, show_progress) for the extension. `progress`: True (default: tqdm if
    importable, else stderr), False (nothing), or a callable (label, unit, done, total, seconds, final)."""
    if progress is False or progress is None:
        return None, False
    if callable(progress):
        return progress, True
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None, True
    return _TqdmSink(tqdm), True


class _TqdmSink:
    def __init__(self, tqdm):
        self._tqdm = tqdm
        self._bars = {}

    def __call__(self, label, unit, done, total, seconds, final):
        bar = self._bars.get(label)
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = self._bars[label] = self._tqdm(total=total, desc=label, unit=unit, leave=True)
        bar.update(done - bar.n)
        if final:
            bar.close()
            del self._bars[label]
