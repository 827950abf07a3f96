-- Test cases of health.lua, run with a plain Lua interpreter:
--   lua5.4 deploy/gitops/argocd/health_test.lua
-- (scripts/check-gitops.sh runs it, and installs lua5.4 when missing).
-- Each case gives the CR as Argo CD passes it (obj) and the expected result.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local source = assert(io.open(here .. "/health.lua")):read("a")

local function health(obj)
  -- Argo CD runs the script with `obj` as a global and takes what it returns.
  local env = setmetatable({obj = obj}, {__index = _G})
  local chunk = assert(load(source, "health.lua", "t", env))
  return chunk()
end

local function cond(kind, status, reason, message)
  return {type = kind, status = status, reason = reason, message = message,
          lastTransitionTime = "2026-11-26T05:00:00Z"}
end

local function cr(generation, status)
  return {apiVersion = "middleware.claude-relay.io/v1alpha1", kind = "ClaudeMiddleware",
          metadata = {name = "relay", namespace = "ai", generation = generation}, status = status}
end

local cases = {
  {name = "no status yet", obj = cr(1, nil), status = "Progressing", message = "Waiting for the operator"},
  {name = "status of an older generation", status = "Progressing", message = "generation 3",
   obj = cr(3, {observedGeneration = 2, conditions = {cond("Ready", "True", "Available", "3/3 replicas available")}})},
  {name = "rollout under way", status = "Progressing", message = "1/3 replicas available",
   obj = cr(2, {observedGeneration = 2, conditions = {
     cond("Ready", "False", "RollingOut", "1/3 replicas available, 3 updated"),
     cond("Progressing", "True", "RollingOut", "1/3 replicas available, 3 updated"),
     cond("Reconciling", "True", "RollingOut", "1/3 replicas available, 3 updated"),
     cond("Degraded", "False", "AsExpected", "no problem"),
     cond("Stalled", "False", "AsExpected", "no problem")}})},
  {name = "all replicas available", status = "Healthy", message = "3/3 replicas available",
   obj = cr(2, {observedGeneration = 2, conditions = {
     cond("Ready", "True", "Available", "3/3 replicas available"),
     cond("Progressing", "False", "RolloutComplete", "the Deployment is up to date"),
     cond("Reconciling", "False", "RolloutComplete", "the Deployment is up to date"),
     cond("Degraded", "False", "AsExpected", "no problem"),
     cond("Stalled", "False", "AsExpected", "no problem")}})},
  {name = "missing Secret", status = "Degraded", message = "SecretMissing: secret ai/redis-auth",
   obj = cr(1, {observedGeneration = 1, conditions = {
     cond("Ready", "False", "SecretMissing", "secret ai/redis-auth not found"),
     cond("Progressing", "False", "SecretMissing", "blocked until the problem is fixed"),
     cond("Degraded", "True", "SecretMissing", "secret ai/redis-auth not found"),
     cond("Stalled", "True", "SecretMissing", "secret ai/redis-auth not found")}})},
  {name = "Stalled alone counts as Degraded", status = "Degraded", message = "InvalidSpec",
   obj = cr(4, {observedGeneration = 4, conditions = {cond("Stalled", "True", "InvalidSpec", "bad")}})},
  {name = "Degraded wins over a stale Ready=True", status = "Degraded", message = "SecretKeyMissing",
   obj = cr(5, {observedGeneration = 5, conditions = {
     cond("Ready", "True", "Available", "3/3 replicas available"),
     cond("Degraded", "True", "SecretKeyMissing", "key password missing")}})},
  {name = "status without conditions", status = "Progressing", message = "Waiting for the proxies",
   obj = cr(1, {observedGeneration = 1})},
  {name = "no generation in metadata", status = "Healthy", message = "1/1",
   obj = {metadata = {name = "x"}, status = {observedGeneration = 1, conditions = {cond("Ready", "True", "Available", "1/1 replicas available")}}}},
}

local failures = 0
for _, c in ipairs(cases) do
  local ok, hs = pcall(health, c.obj)
  local problem
  if not ok then
    problem = "error: " .. tostring(hs)
  elseif hs.status ~= c.status then
    problem = "status " .. tostring(hs.status) .. ", want " .. c.status
  elseif c.message and not (hs.message or ""):find(c.message, 1, true) then
    problem = "message " .. string.format("%q", tostring(hs.message)) .. " lacks " .. string.format("%q", c.message)
  end
  if problem then
    failures = failures + 1
    print("FAIL  " .. c.name .. ": " .. problem)
  else
    print("ok    " .. c.name .. " → " .. hs.status .. " (" .. hs.message .. ")")
  end
end
print(string.format("%d cases, %d failed", #cases, failures))
os.exit(failures == 0 and 0 or 1)
