-- Argo CD health check for memoturn.io/MemoryTenant (the kstatus conditions the operator writes).
-- Install: argocd-cm key `resource.customizations.health.memoturn.io_MemoryTenant` (docs/operations.md).
-- Argo CD sets `obj` to the live object and reads the returned table's status and message.
local hs = { status = "Progressing", message = "waiting for the operator to report a status" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < generation then
  hs.message = "the operator has not handled generation " .. tostring(generation) .. " yet"
  return hs
end
local by_type = {}
for _, c in ipairs(obj.status.conditions) do
  if c.type ~= nil then
    by_type[c.type] = c
  end
end
local function says(kind, status)
  return by_type[kind] ~= nil and by_type[kind].status == status
end
local function text(kind)
  local c = by_type[kind]
  return (c.reason or kind) .. ": " .. (c.message or "")
end
if says("Stalled", "True") then
  hs.status = "Degraded"
  hs.message = text("Stalled")
  return hs
end
for _, kind in ipairs({ "ObjectStoreReachable", "LeaseStoreReachable" }) do
  if says(kind, "False") then
    hs.status = "Degraded"
    hs.message = text(kind)
    return hs
  end
end
if says("Ready", "True") then
  hs.status = "Healthy"
  hs.message = by_type["Ready"].message or "Ready"
  return hs
end
if says("Reconciling", "True") then
  hs.message = text("Reconciling")
elseif by_type["Ready"] ~= nil then
  hs.message = text("Ready")
end
return hs
