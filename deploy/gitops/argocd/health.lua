-- Argo CD health check for middleware.claude-relay.io/ClaudeMiddleware.
-- The operator writes kstatus-compliant status: observedGeneration and the
-- conditions Ready, Progressing/Reconciling, Degraded/Stalled.
--   Degraded:    Degraded (or Stalled) is True: a spec or dependency problem
--                (a missing Secret, an invalid spec) the user must fix.
--   Healthy:     the operator has seen the current generation and Ready is True.
--   Progressing: anything else (no status yet, an old generation, a rollout).
local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if observed == nil or (generation ~= nil and observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
for _, kind in ipairs({"Degraded", "Stalled"}) do
  local c = condition(conditions, kind)
  if c ~= nil and c.status == "True" then
    hs.status = "Degraded"
    hs.message = (c.reason or kind) .. ": " .. (c.message or "")
    return hs
  end
end

local ready = condition(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end

hs.status = "Progressing"
local progressing = condition(conditions, "Progressing")
if progressing ~= nil and progressing.message ~= nil then
  hs.message = progressing.message
elseif ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
else
  hs.message = "Waiting for the proxies to become ready"
end
return hs
