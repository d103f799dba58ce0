#!/usr/bin/env python3
"""Scrapes a segsynth metrics endpoint twice, SECONDS apart, with a real HTTP client,
parses each answer with the Prometheus client library's OpenMetrics parser (which
rejects malformed text) and prints what the Rust test checks, as JSON.

Usage: python tests/scrape_metrics.py URL SECONDS
"""

import json
import sys
import time
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read().decode()
        kind = r.headers.get("Content-Type", "")
    families = list(text_string_to_metric_families(body))
    samples = {}
    for f in families:
        for s in f.samples:
            key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))
            samples[key] = s.value
    return {"content_type": kind, "families": sorted(f.name for f in families), "samples": samples}


def main():
    url, seconds = sys.argv[1], float(sys.argv[2])
    first = scrape(url)
    time.sleep(seconds)
    second = scrape(url)
    print(json.dumps({"first": first, "second": second}))


if __name__ == "__main__":
    main()
