"""Reading a Prometheus exposition in tests: one sample's value, and the names a scrape can be queried by."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

# The sample names PromQL sees for each metric type (prometheus-client names a counter family
# without its ``_total``).
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
    "info": ("_info",),
}


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with exactly ``labels`` (0 when absent, as a counter not yet counted)."""
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def total(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    return sum(
        float(s.value)
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def queryable_names(exposition: str) -> set[str]:
    """Every series name a query may use on this exposition (declared families, sampled or not yet)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names
