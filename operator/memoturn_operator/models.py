"""``MemoryTenant`` and ``MemoryBranch``: specs and statuses, the source of the CRD schemas.

Field names are camelCase as Kubernetes users expect. Cross-field rules that the schema
alone cannot state are CEL rules (``x-kubernetes-validations``) attached in :mod:`.crd`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Resources(_Spec):
    requests: dict[str, str] = Field(default_factory=dict, description="e.g. {cpu: 500m, memory: 1Gi}")
    limits: dict[str, str] = Field(default_factory=dict)


class NodesSpec(_Spec):
    minReplicas: int = Field(1, ge=1, description="Fewest data-plane nodes")
    maxReplicas: int = Field(3, ge=1, description="Most data-plane nodes (tier scaling stays within)")
    resources: Resources = Field(default_factory=Resources)
    cacheSizeLimit: str = Field("10Gi", description="sizeLimit of the emptyDir cache (no PersistentVolumes)")
    hotPerNodeTarget: int = Field(1000, ge=1, description="Scale out above this many hot databases per node")


class GatewaySpec(_Spec):
    replicas: int = Field(2, ge=1)
    resources: Resources = Field(default_factory=Resources)


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


class MemoryTenantSpec(_Spec):
    image: str = Field(description="The Memoturn image (all commands)")
    nodes: NodesSpec = Field(default_factory=NodesSpec)
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    objectStore: ObjectStoreSpec
    etcd: EtcdSpec
    leaseTtlSeconds: int = Field(15, ge=2, le=300)
    durability: Literal["standard", "durable"] = "standard"
    replicasPerDatabase: int = Field(1, ge=0, le=5)
    tiers: TierPolicy = Field(default_factory=TierPolicy)
    auth: AuthSpec = Field(default_factory=AuthSpec)


class Condition(BaseModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    lastTransitionTime: str | None = None
    observedGeneration: int | None = None


class MemoryTenantStatus(BaseModel):
    phase: Literal["Pending", "Progressing", "Ready", "Degraded"] = "Pending"
    observedGeneration: int | None = None
    readyNodes: int = 0
    hotDatabases: int = 0
    warmDatabases: int = 0
    endpoints: dict[str, str] = Field(default_factory=dict)
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
