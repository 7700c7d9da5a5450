"""CrossGuard policy pack of Ultimate Suite (run with ``--policy-pack policies/crossguard``).

Rules live in pure modules by domain (``storage``, ``tagging``, ``kubernetes``); ``evaluate``
runs them without the policy server and ``pack`` adapts them to pulumi-policy.
"""
