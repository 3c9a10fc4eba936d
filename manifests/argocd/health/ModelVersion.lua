-- Argo CD health for acgs.io/ModelVersion
local hs = {status = "Progressing", message = "Waiting for artifact verification"}
if obj.status == nil or obj.status.phase == nil then return hs end
local GOAL_PHASE = "Ready"
-- @common
if ready() then
  hs.status = "Healthy"
elseif phase == "Invalid" then
  hs.status = "Degraded"
end
return hs
