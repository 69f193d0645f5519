-- Argo CD health check for memoturn.io/MemoryBranch (its phase and Ready condition).
-- Install: argocd-cm key `resource.customizations.health.memoturn.io_MemoryBranch` (docs/operations.md).
local hs = { status = "Progressing", message = "waiting for the fork" }
if obj.status == nil or obj.status.phase == nil then
  return hs
end
local reason = ""
if obj.status.conditions ~= nil and obj.status.conditions[1] ~= nil then
  local c = obj.status.conditions[1]
  reason = (c.reason or "") .. ": " .. (c.message or "")
end
local phase = obj.status.phase
if phase == "Ready" then
  hs.status = "Healthy"
  hs.message = "forked at txid " .. tostring(obj.status.resolvedTxid)
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = reason
elseif phase == "Expired" then
  -- A burner branch that reached its TTL did what it was made for.
  hs.status = "Healthy"
  hs.message = "expired: " .. reason
else
  hs.message = phase .. " " .. reason
end
return hs
