-- Argo CD health for acgs.io/Deployment (blue-green model serving)
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.phase == nil then return hs end
local GOAL_PHASE = "Healthy"
-- @common
local phase = obj.status.phase
hs.message = obj.status.message or phase
-- The same states kstatus reads: Stalled (a permanent failure), Ready (the goal), else in progress.
if is_true("Stalled") then
  hs.status = "Degraded"
  return hs
end
if phase == "Paused" then
  hs.status = "Suspended"
elseif ready() then
  hs.status = "Healthy"
elseif phase == "Degraded" then
  hs.status = "Degraded"
end
return hs
