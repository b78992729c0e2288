"""Go-style duration text, as InfluxDB 1.x prints durations (``168h0m0s``, ``1h30m0s``, ``0s``)."""


def go_duration(ns: int) -> str:
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 10**9:
        for unit, div in (("ms", 10**6), ("µs", 10**3)):
            if ns >= div:
                return sign + _trim(ns / div) + unit
        return f"{sign}{ns}ns"
    h, rem = divmod(ns, 3600 * 10**9)
    m, rem = divmod(rem, 60 * 10**9)
    s = _trim(rem / 10**9)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def _trim(x: float) -> str:
    return f"{x:.9f}".rstrip("0").rstrip(".")
