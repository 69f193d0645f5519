"""``MemoryTenant`` and ``MemoryBranch``: specs and statuses, the source of the CRD schemas.

Field names are camelCase as Kubernetes users expect. Cross-field rules that the schema
alone cannot state are CEL rules (``x-kubernetes-validations``) attached in :mod:`.crd`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from memoturn.cors import parse_origins
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from . import quantity


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


#: A Kubernetes quantity, an integer or a string (``1``, ``500m``, ``2Gi``), kept as the string.
Quantity = Annotated[
    str,
    BeforeValidator(quantity.normalize),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": quantity.PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


class Resources(_Spec):
    """Container requests and limits; each request must not exceed its limit (the pod would be refused)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, description="e.g. {cpu: 500m, memory: 1Gi}")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="e.g. {memory: 2Gi}")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        for name, request in self.requests.items():
            limit = self.limits.get(name)
            if limit is not None and quantity.parse(request) > quantity.parse(limit):
                raise ValueError(f"the {name} request ({request}) exceeds its limit ({limit})")
        return self


class NodeResources(Resources):
    """Defaults make node pods Burstable, not BestEffort (the first evicted under memory pressure)."""

    requests: dict[str, Quantity] = Field(
        default_factory=lambda: {"cpu": "250m", "memory": "512Mi"}, description="default {cpu: 250m, memory: 512Mi}"
    )
    limits: dict[str, Quantity] = Field(
        default_factory=lambda: {"memory": "2Gi"},
        description="default {memory: 2Gi}; no cpu limit (throttling hurts latency more than it saves)",
    )


class GatewayResources(Resources):
    requests: dict[str, Quantity] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "128Mi"}, description="default {cpu: 100m, memory: 128Mi}"
    )
    limits: dict[str, Quantity] = Field(
        default_factory=lambda: {"memory": "512Mi"}, description="default {memory: 512Mi}"
    )


class Toleration(_Spec):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None


class TopologySpreadConstraint(_Spec):
    maxSkew: int = Field(1, ge=1)
    topologyKey: str = Field(description="e.g. topology.kubernetes.io/zone or kubernetes.io/hostname")
    whenUnsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = "ScheduleAnyway"
    labelSelector: dict[str, Any] | None = Field(None, description="unset: this component's own pods")
    minDomains: int | None = Field(None, ge=1)
    matchLabelKeys: list[str] | None = None
    nodeAffinityPolicy: Literal["Honor", "Ignore"] | None = None
    nodeTaintsPolicy: Literal["Honor", "Ignore"] | None = None


class Placement(_Spec):
    """Where a component's pods may run, as in a pod spec."""

    nodeSelector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    affinity: dict[str, Any] | None = Field(
        None, description="A pod affinity (nodeAffinity, podAffinity, podAntiAffinity); unset: the default"
    )
    topologySpreadConstraints: list[TopologySpreadConstraint] | None = Field(
        None, description="unset: the default spread; [] for none"
    )
    priorityClassName: str | None = None


class NodesSpec(Placement):
    minReplicas: int = Field(1, ge=1, description="Fewest data-plane nodes")
    maxReplicas: int = Field(3, ge=1, description="Most data-plane nodes (tier scaling stays within)")
    resources: NodeResources = Field(default_factory=NodeResources)
    cacheSizeLimit: Quantity = Field("10Gi", description="sizeLimit of the emptyDir cache (no PersistentVolumes)")
    hotPerNodeTarget: int = Field(1000, ge=1, description="Scale out above this many hot databases per node")


class GatewaySpec(Placement):
    replicas: int = Field(2, ge=1)
    resources: GatewayResources = Field(default_factory=GatewayResources)
    corsOrigins: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Browser origins (scheme://host[:port], or * alone) whose pages may call the gateway "
        "directly (CORS; MEMOTURN_CORS_ORIGINS); empty: none",
    )

    @field_validator("corsOrigins")
    @classmethod
    def _cors(cls, v: list[str]) -> list[str]:
        parse_origins(",".join(v))
        return v


class ObjectStoreSpec(_Spec):
    provider: Literal["s3", "gcs", "azure"] = Field(
        "s3", description="s3 (AWS S3 or an S3-compatible server), gcs (Google Cloud Storage), azure (Azure Blob)"
    )
    bucket: str = Field(min_length=3, max_length=222, description="The bucket (s3, gcs) or container (azure)")
    prefix: str = ""
    endpoint: str | None = Field(
        None, description="Endpoint URL of a compatible server or emulator; unset = the cloud's"
    )
    region: str = Field("us-east-1", description="s3 only")
    account: str | None = Field(None, description="azure only, required there: the storage account")
    credentialsSecret: str | None = Field(
        None,
        description=(
            "Secret with the keys: s3 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; gcs service-account.json; "
            "azure AZURE_STORAGE_ACCOUNT_KEY. Unset = the cloud's workload identity (IRSA on EKS, Workload "
            "Identity on GKE and AKS), set up through serviceAccountAnnotations"
        ),
    )
    serviceAccountAnnotations: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Annotations of the tenant's ServiceAccount, e.g. eks.amazonaws.com/role-arn, "
            "iam.gke.io/gcp-service-account or azure.workload.identity/client-id"
        ),
    )

    @model_validator(mode="after")
    def _azure_needs_an_account(self) -> ObjectStoreSpec:
        if self.provider == "azure" and not self.account:
            raise ValueError("objectStore.account is required when provider is azure")
        return self


class EtcdSpec(_Spec):
    endpoints: list[str] = Field(
        min_length=1,
        description="etcd members, host:port or https://host:port; all are used, a failing member is left for the next",
    )
    tlsSecret: str | None = Field(
        None,
        description=(
            "Secret with ca.crt (the CA of etcd's server certificates), tls.crt and tls.key (the client "
            "certificate etcd's --client-cert-auth asks for); mounted read-only into node and gateway pods. "
            "Set: TLS to every endpoint"
        ),
    )
    credentialsSecret: str | None = Field(
        None,
        description="Secret with username and password of an etcd user (etcd's auth enabled); set as variables",
    )


class TierPolicy(_Spec):
    hotIdleSeconds: int = Field(60, ge=1)
    warmIdleSeconds: int = Field(3600, ge=1)
    maxHot: int = Field(1000, ge=1)
    maxDiskBytes: int = Field(10 * 1024**3, ge=0)


class AuthSpec(_Spec):
    tokenSecret: str | None = Field(None, description="Secret with key admin-token; generated when unset")


class TLSSpec(_Spec):
    secretName: str = Field(
        min_length=1,
        description=(
            "A kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt: cert-manager's layout) mounted in node and "
            "gateway pods: both serve HTTPS, the gateway verifies nodes against ca.crt. The certificate names the "
            "gateway Service and *.<tenant>-memoturn-node.<namespace>.svc (see docs/kubernetes.md)"
        ),
    )


class NetworkPolicySpec(_Spec):
    enabled: bool = Field(True, description="A NetworkPolicy for the gateway and one for the nodes")
    gatewayFrom: list[dict[str, Any]] = Field(
        default_factory=list,
        description="NetworkPolicyPeers allowed to reach the gateway; empty: every client",
    )
    nodesFrom: list[dict[str, Any]] = Field(
        default_factory=list,
        description="NetworkPolicyPeers allowed to reach the nodes besides the gateway, peers and the operator "
        "(e.g. Prometheus)",
    )


class LocalObjectReference(_Spec):
    name: str = Field(min_length=1)


class MemoryTenantSpec(_Spec):
    image: str = Field(description="The Memoturn image (all commands)")
    imagePullSecrets: list[LocalObjectReference] = Field(default_factory=list, description="[{name: regcred}]")
    nodes: NodesSpec = Field(default_factory=NodesSpec)
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    objectStore: ObjectStoreSpec
    etcd: EtcdSpec
    leaseTtlSeconds: int = Field(15, ge=2, le=300)
    durability: Literal["standard", "durable"] = "standard"
    replicasPerDatabase: int = Field(1, ge=0, le=5)
    tiers: TierPolicy = Field(default_factory=TierPolicy)
    auth: AuthSpec = Field(default_factory=AuthSpec)
    tls: TLSSpec | None = Field(None, description="Unset: plain HTTP inside the cluster")
    networkPolicy: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)


class Condition(BaseModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    lastTransitionTime: str | None = None
    observedGeneration: int | None = None


class TenantUsage(BaseModel):
    """What the tenant's running node pods report (their counters restart with them)."""

    databases: int = Field(0, description="Hot and warm databases on the nodes")
    cacheBytes: int = Field(0, description="Bytes of warm database files on the nodes' disks")
    shippedBytes: int = Field(
        0, description="Segment bytes written to the object store since the node pods started (not bytes stored)"
    )
    reads: int = Field(0, description="Read requests (GET, query, recall, search) since the node pods started")
    writes: int = Field(0, description="Transactions committed since the node pods started")
    storeBytes: int = Field(
        0,
        description="Bytes the tenant's object store holds, measured by listing the bucket every "
        "store_usage_interval_seconds (0 until the first measurement)",
    )
    storeObjects: int = Field(
        0,
        description="Objects the tenant's object store holds, measured by listing the bucket every "
        "store_usage_interval_seconds (0 until the first measurement)",
    )


class MemoryTenantStatus(BaseModel):
    phase: Literal["Pending", "Progressing", "Ready", "Degraded"] = "Pending"
    observedGeneration: int | None = None
    readyNodes: int = 0
    hotDatabases: int = 0
    warmDatabases: int = 0
    endpoints: dict[str, str] = Field(default_factory=dict)
    usage: TenantUsage | None = None
    conditions: list[Condition] = Field(default_factory=list)


class BranchParent(_Spec):
    branch: str = "main"
    txid: int | None = Field(None, ge=0)
    checkpoint: str | None = None
    timestamp: str | None = Field(None, description="RFC 3339; the last txid committed at or before it")


class MemoryBranchSpec(_Spec):
    tenant: str = Field(description="MemoryTenant in the same namespace")
    database: str
    branch: str = Field(description="Name of the branch to create")
    parent: BranchParent = Field(default_factory=BranchParent)
    ttlSeconds: int | None = Field(None, ge=1, description="A burner branch: deleted this long after creation")


class MemoryBranchStatus(BaseModel):
    phase: Literal["Pending", "Ready", "Expired", "Failed"] = "Pending"
    resolvedTxid: int | None = None
    createdTime: str | None = None
    expiryTime: str | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
