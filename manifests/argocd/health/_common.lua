-- Shared by every kind's health check; `make crds` puts it in place of the line `-- @common`
-- (Argo CD runs each script alone). GOAL_PHASE: the kind's goal phase, set before that line; it ends with `phase` set and Stalled reported Degraded, and the kind's script goes on from there.
local function condition(type_)
  if obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then return c end
  end
  return nil
end
-- kstatus: a condition describes the spec it was written for; an older one says nothing yet.
local function is_true(type_)
  local c = condition(type_)
  if c == nil or c.status ~= "True" then return false end
  return c.observedGeneration == nil or obj.metadata.generation == nil
      or c.observedGeneration >= obj.metadata.generation
end
-- Ready, or the goal phase for a status written before the Ready condition existed.
local function ready()
  if condition("Ready") == nil then return obj.status.phase == GOAL_PHASE end
  return is_true("Ready")
end
if obj.status.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end
local phase = obj.status.phase
hs.message = obj.status.message or phase
-- The same states kstatus reads: Stalled (a permanent failure), Ready (the goal), else in progress.
if is_true("Stalled") then
  hs.status = "Degraded"
  return hs
end
