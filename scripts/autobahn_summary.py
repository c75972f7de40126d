"""Summarise a kosoku/Autobahn index.json: counts per behaviour, the failing cases, and a closing
line `conformance: N passed, M failed`. Exit status 1 if any case failed."""
import json
import sys
from collections import Counter

PASS = {"OK", "NON-STRICT", "INFORMATIONAL"}

with open(sys.argv[1]) as f:
    index = json.load(f)
counts = Counter()
bad = []
for agent, cases in index.items():
    for case, r in cases.items():
        b = r.get("behavior", "?")
        bc = r.get("behaviorClose", "?")
        counts[b] += 1
        if b not in PASS or bc not in PASS:
            bad.append((case, b, bc))
print("behaviours:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
for case, b, bc in sorted(bad, key=lambda t: [int(x) if x.isdigit() else x for x in t[0].split(".")]):
    print(f"  {case}: {b} (close: {bc})")
total = sum(counts.values())
print(f"conformance: {total - len(bad)} passed, {len(bad)} failed")
sys.exit(1 if bad else 0)
