-- Argo CD health for acgs.io/ModelVersion
local hs = {status = "Progressing", message = "Waiting for artifact verification"}
if obj.status == nil or obj.status.phase == nil then return hs end
local GOAL_PHASE = "Ready"
-- @common
local phase = obj.status.phase
hs.message = obj.status.message or phase
-- The same states kstatus reads: Stalled (a permanent failure), Ready (the goal), else in progress.
if is_true("Stalled") then
  hs.status = "Degraded"
  return hs
end
if ready() then
  hs.status = "Healthy"
elseif phase == "Invalid" then
  hs.status = "Degraded"
end
return hs
