"""The Memoturn operator: kopf handlers over pure functions that build the desired objects.

* :mod:`.models` — the ``MemoryTenant`` and ``MemoryBranch`` specs and statuses (pydantic);
  the single source of truth the CRDs in ``crds/`` are generated from (:mod:`.crd`).
* :mod:`.resources` — ``MemoryTenant`` → Deployments, Services, ConfigMap, ServiceAccount,
  RBAC, PodDisruptionBudget, token Secret: pure functions, unit-tested.
* :mod:`.handlers` — thin kopf handlers that apply those objects and report status.
"""

GROUP = "memoturn.io"
VERSION = "v1alpha1"
