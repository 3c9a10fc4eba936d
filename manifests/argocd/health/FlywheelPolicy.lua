-- Argo CD health for acgs.io/FlywheelPolicy
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.phase == nil then return hs end
local GOAL_PHASE = "Collecting"
-- @common
if phase == "Failed" then
  hs.status = "Degraded"
elseif ready() then
  hs.status = "Healthy"
end
return hs
