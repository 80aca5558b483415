"""The dependency audit's offline side: an advisory snapshot and the check against it.

Not part of the shipped package (the wheel holds `consumer` only); `scripts/audit` runs
`python -m security.audit`.
"""
