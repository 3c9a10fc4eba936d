-- Argo CD health for acgs.io/Deployment (blue-green model serving)
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.phase == nil then return hs end
local GOAL_PHASE = "Healthy"
-- @common
if phase == "Paused" then
  hs.status = "Suspended"
elseif ready() then
  hs.status = "Healthy"
elseif phase == "Degraded" then
  hs.status = "Degraded"
end
return hs
