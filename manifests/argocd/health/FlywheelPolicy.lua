-- Argo CD health for acgs.io/FlywheelPolicy
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.phase == nil then return hs end
local GOAL_PHASE = "Collecting"
-- @common
local phase = obj.status.phase
hs.message = obj.status.message or phase
-- The same states kstatus reads: Stalled (a permanent failure), Ready (the goal), else in progress.
if is_true("Stalled") then
  hs.status = "Degraded"
  return hs
end
if phase == "Failed" then
  hs.status = "Degraded"
elseif ready() then
  hs.status = "Healthy"
end
return hs
